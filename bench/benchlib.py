# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""Shared bits of the peer benchmarks (bench/net.py, bench/blk.py,
bench/run-all.py): CPU time of a process, ratios of paired runs, the
results file run-all.py reads, and the table.

Every figure a peer benchmark reports is a ratio of our back-end to a peer
measured in the same run, in adjacent runs (ours, peer, ours, peer, ...):
absolute times on a shared machine are noise, a ratio of neighbours much
less so. Standard library only: it runs under Debian's /usr/bin/python3.
"""

import json
import os
import statistics
import sys

CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    """User + system CPU seconds of process @pid (all its threads) so far,
    from /proc/PID/stat (10 ms resolution)."""
    with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def log(message):
    print(message, file=sys.stderr, flush=True)


def cpus():
    """Two CPUs this process may run on: (front-end's, back-end's)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return allowed[0], allowed[0]
    return allowed[0], allowed[1]


class Row:
    """One line of the table: a ratio ours/peer over paired runs, with the
    absolute values beside it (for a feel only) and the goal.

    goal: (op, value) with op '>=' or '<=', judged on the median; or None.
    """

    def __init__(self, bench, metric, unit, ours, peer, goal=None, note=''):
        self.bench = bench
        self.metric = metric
        self.unit = unit
        self.ours = list(ours)
        self.peer = list(peer)
        self.goal = goal
        self.note = note

    @property
    def ratios(self):
        return [o / p for o, p in zip(self.ours, self.peer) if p and o is not None]

    def verdict(self):
        r = self.ratios
        if self.goal is None or not r:
            return '-'
        med = statistics.median(r)
        op, value = self.goal
        ok = med >= value if op == '>=' else med <= value
        return 'met' if ok else 'NOT met'

    def to_json(self):
        return {'bench': self.bench, 'metric': self.metric, 'unit': self.unit,
                'ours': self.ours, 'peer': self.peer,
                'goal': list(self.goal) if self.goal else None, 'note': self.note}

    @classmethod
    def from_json(cls, obj):
        goal = tuple(obj['goal']) if obj.get('goal') else None
        return cls(obj['bench'], obj['metric'], obj['unit'], obj['ours'], obj['peer'],
                   goal, obj.get('note', ''))


class Value:
    """A line of the table that is a repeatable count, not a ratio (the
    hot path's instructions per request, from callgrind)."""

    def __init__(self, bench, metric, value, goal=None, note='', unit=''):
        self.bench = bench
        self.metric = metric
        self.value = value
        self.goal = goal
        self.note = note
        self.unit = unit

    def verdict(self):
        if self.goal is None or self.value is None:
            return '-'
        op, limit = self.goal
        ok = self.value >= limit if op == '>=' else self.value <= limit
        return 'met' if ok else 'NOT met'

    def to_json(self):
        return {'bench': self.bench, 'metric': self.metric, 'value': self.value,
                'goal': list(self.goal) if self.goal else None, 'note': self.note,
                'unit': self.unit}

    @classmethod
    def from_json(cls, obj):
        goal = tuple(obj['goal']) if obj.get('goal') else None
        return cls(obj['bench'], obj['metric'], obj['value'], goal, obj.get('note', ''),
                   obj.get('unit', ''))


def load_rows(obj):
    return [Value.from_json(o) if 'value' in o else Row.from_json(o) for o in obj]


def write_results(path, rows, notes=()):
    """Writes @rows (and free-text @notes) to @path as JSON for run-all.py."""
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'rows': [r.to_json() for r in rows], 'notes': list(notes)}, f, indent=1)


def read_results(path):
    with open(path, encoding='utf-8') as f:
        obj = json.load(f)
    return load_rows(obj['rows']), obj.get('notes', [])


def _fmt(x, digits=3):
    if x is None:
        return '-'
    if abs(x) >= 100:
        return '%.0f' % x
    if abs(x) >= 10:
        return '%.1f' % x
    return '%.*f' % (digits - 1 if abs(x) >= 1 else digits, x)


def _goal_text(goal, suffix='x'):
    if goal is None:
        return ''
    return '%s %g%s' % (goal[0], goal[1], suffix)


def format_table(rows):
    """The table: one line per row, ratios as min / median / max."""
    header = ('bench', 'metric', 'n', 'ratio min', 'median', 'max', 'goal', 'verdict',
              'ours (median)', 'peer (median)')
    lines = []
    for r in rows:
        if isinstance(r, Value):
            lines.append((r.bench, r.metric, '1', '', _fmt(r.value) + r.unit, '',
                          _goal_text(r.goal, r.unit), r.verdict(), '', ''))
            continue
        ratios = r.ratios
        ours = [o for o in r.ours if o is not None]
        if ratios:
            lo, med, hi = min(ratios), statistics.median(ratios), max(ratios)
            cells = ('%.2fx' % lo, '%.2fx' % med, '%.2fx' % hi)
        else:
            cells = ('-', '-', '-')
        lines.append((r.bench, r.metric, str(len(ratios))) + cells
                     + (_goal_text(r.goal), r.verdict(),
                        ('%s %s' % (_fmt(statistics.median(ours)), r.unit)) if ours else '-',
                        ('%s %s' % (_fmt(statistics.median(r.peer)), r.unit)) if r.peer else '-'))
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
    out = []
    for i, row in enumerate([header] + lines):
        out.append('  '.join(cell.ljust(widths[j]) if j < 2 or j >= 6 else cell.rjust(widths[j])
                             for j, cell in enumerate(row)).rstrip())
        if i == 0:
            out.append('  '.join('-' * w for w in widths))
    return '\n'.join(out)
