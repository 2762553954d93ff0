#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Runs bench/hotpath for 1-, 2- and 4-descriptor chains, direct and
# indirect: nanoseconds per request (noisy on shared machines: for a feel
# only) and device-side instructions per request counted by callgrind
# (repeatable), and prints a table.
#
#   bench/run-hotpath.py BUILD_DIR [REQUESTS]

import os
import re
import subprocess
import sys
import tempfile

TARGET_2DESC = 200


def callgrind_instructions(binary, args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                        "--toggle-collect=bench_device_round", binary] + args,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            for line in f:
                m = re.match(r"(summary|totals):\s+(\d+)", line)
                if m:
                    return int(m.group(2))
    raise RuntimeError("no instruction count in the callgrind output")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    binary = os.path.join(build, "bench", "hotpath")
    rows = []
    for descs in (1, 2, 4):
        for layout in ("direct", "indirect"):
            args = [str(descs), layout, str(requests)]
            timed = subprocess.run([binary] + args, check=True, capture_output=True, text=True)
            ns = float(re.search(r"ns/request=([\d.]+)", timed.stdout).group(1))
            # callgrind is ~50x slower: fewer requests; the per-request count is stable.
            n = max(requests // 10, 1000)
            instr = callgrind_instructions(binary, [str(descs), layout, str(n)]) / n
            rows.append((descs, layout, ns, instr))

    print("%-6s %-9s %12s %14s" % ("descs", "layout", "ns/request", "instr/request"))
    for descs, layout, ns, instr in rows:
        print("%-6d %-9s %12.1f %14.1f" % (descs, layout, ns, instr))
    two = [r for r in rows if r[0] == 2 and r[1] == "direct"][0][3]
    print("2-descriptor pop+push: %.1f instructions (target %d): %s"
          % (two, TARGET_2DESC, "met" if two <= TARGET_2DESC else "not met"))


if __name__ == "__main__":
    main()
