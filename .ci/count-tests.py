#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Counts individual test cases from meson's testlog.json (one JSON object per
# line, one per test run) and prints, as its last line,
#   N passed, N failed[, N skipped]
#
# Each test's TAP output ("stdout") is parsed: top-level "ok N" / "not ok N"
# lines are cases; "# SKIP" (and "not ok ... # TODO") count as skipped, and
# "Bail out!" as one more failure. A test whose output has no TAP case counts
# as one case, passed or failed by its meson "result". A test meson says
# failed (crash, timeout, missing plan) with no failed case of its own counts
# one more failure. With --meson-status N, a non-zero N with no failure found
# counts one failure too (meson test failed before running anything).
#
# Exit status: 1 if anything failed, 0 otherwise.

import argparse
import json
import re
import sys

TAP_LINE = re.compile(r'^(not ok|ok)\b(.*)$')
DIRECTIVE = re.compile(r'#\s*(SKIP|TODO)\b', re.IGNORECASE)
BAIL_OUT = re.compile(r'^Bail out!')

PASSING_RESULTS = {'OK', 'EXPECTEDFAIL'}
SKIPPED_RESULTS = {'SKIP'}


def count_tap(stdout):
    """(passed, failed, skipped, cases) for one test's TAP output."""
    passed = failed = skipped = cases = 0
    for line in stdout.splitlines():
        # Indented lines are nested subtests, summed up by their parent line.
        match = TAP_LINE.match(line)
        if match:
            cases += 1
            ok = match.group(1) == 'ok'
            directive = DIRECTIVE.search(match.group(2))
            kind = directive.group(1).upper() if directive else None
            if kind == 'SKIP':
                skipped += 1
            elif kind == 'TODO':
                if ok:
                    passed += 1
                else:
                    skipped += 1
            elif ok:
                passed += 1
            else:
                failed += 1
        elif BAIL_OUT.match(line):
            failed += 1
    return passed, failed, skipped, cases


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument('testlog', help='build/meson-logs/testlog.json')
    parser.add_argument('--meson-status', type=int, default=0,
                        help='exit status of meson test')
    args = parser.parse_args(argv[1:])

    passed = failed = skipped = 0
    entries = []
    try:
        with open(args.testlog, encoding='utf-8', errors='replace') as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    entries.append(json.loads(line))
                except ValueError as e:
                    print('# unreadable testlog line: %s' % e)
                    failed += 1
    except OSError as e:
        print('# no test log (%s): the build or the test run failed' % e)
        failed += 1

    for entry in entries:
        name = entry.get('name', '?')
        result = str(entry.get('result', '')).upper()
        p, fl, s, cases = count_tap(entry.get('stdout') or '')
        if cases == 0:
            if result in PASSING_RESULTS:
                p = 1
            elif result in SKIPPED_RESULTS:
                s = 1
            else:
                fl = max(fl, 1)
        elif (result not in PASSING_RESULTS and result not in SKIPPED_RESULTS
              and fl == 0):
            fl = 1
        print('# %s: %s (%d passed, %d failed, %d skipped)'
              % (name, result or '?', p, fl, s))
        passed += p
        failed += fl
        skipped += s

    if args.meson_status != 0 and failed == 0:
        print('# meson test exited with %d' % args.meson_status)
        failed = 1

    summary = '%d passed, %d failed' % (passed, failed)
    if skipped:
        summary += ', %d skipped' % skipped
    print(summary)
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
