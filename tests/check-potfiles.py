#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Keeps po/POTFILES.in honest, printing TAP:
#   - every .c/.h file under libvhostuser-glib/ and tools/ with a translatable
#     string (_("...") or N_("..."), with or without a space before the
#     parenthesis) is listed;
#   - every listed file exists.
#
# Usage: check-potfiles.py SOURCE_ROOT

import os
import re
import sys

SOURCE_DIRS = ('libvhostuser-glib', 'tools')
SUFFIXES = ('.c', '.h')
TRANSLATABLE = re.compile(r'(?<![A-Za-z0-9_])N?_ ?\(\s*"')


def listed_files(potfiles):
    files = []
    with open(potfiles, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#') or line.startswith('['):
                continue
            files.append(line)
    return files


def files_with_strings(root):
    found = []
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.endswith(SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding='utf-8', errors='replace') as f:
                    if TRANSLATABLE.search(f.read()):
                        found.append(os.path.relpath(path, root))
    return found


def main(argv):
    if len(argv) != 2:
        print('usage: %s SOURCE_ROOT' % argv[0], file=sys.stderr)
        return 2
    root = argv[1]
    potfiles = os.path.join(root, 'po', 'POTFILES.in')
    failed = 0
    n = 0

    def check(ok, description, details):
        nonlocal failed, n
        n += 1
        if not ok:
            failed += 1
        print('%s %d - %s' % ('ok' if ok else 'not ok', n, description))
        for line in details:
            print('#   ' + line)

    try:
        listed = listed_files(potfiles)
    except OSError as e:
        check(False, 'po/POTFILES.in can be read', [str(e)])
        print('1..%d' % n)
        return 1

    with_strings = files_with_strings(root)
    missing = [path for path in with_strings if path not in listed]
    check(not missing,
          'every file with translatable strings is in po/POTFILES.in',
          ['not listed: ' + path for path in missing])

    gone = [path for path in listed
            if not os.path.isfile(os.path.join(root, path))]
    check(not gone, 'every file in po/POTFILES.in exists',
          ['does not exist: ' + path for path in gone])

    print('1..%d' % n)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
