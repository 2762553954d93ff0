#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Checks the symbols the shared library exports, printing TAP:
#   - every exported symbol starts with vhost_user_ (apart from the ones the
#     linker adds itself);
#   - with a GIR file: every exported function is in the GIR, and every
#     function the GIR names is exported.
#
# Usage: check-symbols.py LIBRARY.so [GIR]   (GIR may be '' when introspection is off)

import subprocess
import sys
import xml.etree.ElementTree as ET

PREFIX = 'vhost_user_'

# Symbols ld and the C runtime put into every shared object.
LINKER_SYMBOLS = {
    '_init', '_fini', '_edata', '_end', '__bss_start', '_etext', '__end__',
    '__data_start', 'data_start', '__dso_handle', '_DYNAMIC',
    '_GLOBAL_OFFSET_TABLE_', '__gmon_start__', '_ITM_registerTMCloneTable',
    '_ITM_deregisterTMCloneTable', '__cxa_finalize',
}

# nm types of code (text, weak, indirect functions).
FUNCTION_TYPES = set('TtWwiV')

GIR_CORE = '{http://www.gtk.org/introspection/core/1.0}'
GIR_C = '{http://www.gtk.org/introspection/c/1.0}'
GIR_GLIB = '{http://www.gtk.org/introspection/glib/1.0}'
GIR_FUNCTION_TAGS = {GIR_CORE + t for t in ('function', 'method', 'constructor')}


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def diag(self, text):
        for line in str(text).splitlines():
            print('# ' + line)

    def check(self, ok, description, details=()):
        self.n += 1
        if not ok:
            self.failed += 1
        print('%s %d - %s' % ('ok' if ok else 'not ok', self.n, description))
        for line in details:
            self.diag('  ' + line)

    def finish(self):
        print('1..%d' % self.n)
        sys.stdout.flush()
        return 1 if self.failed else 0


def exported_symbols(library):
    """{name: nm type} of the defined dynamic symbols of @library."""
    out = subprocess.run(['nm', '-D', '--defined-only', library],
                         check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        kind, name = fields[-2], fields[-1]
        name = name.split('@', 1)[0]  # versioned: name@@VERSION
        if name in LINKER_SYMBOLS:
            continue
        symbols[name] = kind
    return symbols


def gir_functions(gir):
    """The C functions a GIR names: functions, methods, constructors
    (c:identifier) and the GType getters (glib:get-type)."""
    tree = ET.parse(gir)
    names = set()
    for element in tree.iter():
        if element.tag in GIR_FUNCTION_TAGS:
            identifier = element.get(GIR_C + 'identifier')
            if identifier:
                names.add(identifier)
        get_type = element.get(GIR_GLIB + 'get-type')
        if get_type and get_type != 'intern':
            names.add(get_type)
    return names


def main(argv):
    tap = Tap()

    if len(argv) < 2:
        print('usage: %s LIBRARY.so [GIR]' % argv[0], file=sys.stderr)
        return 2
    library = argv[1]
    gir = argv[2] if len(argv) > 2 else ''

    try:
        symbols = exported_symbols(library)
    except (OSError, subprocess.CalledProcessError) as e:
        tap.check(False, 'nm -D lists the symbols of %s' % library, [str(e)])
        return tap.finish()

    tap.check(len(symbols) > 0, 'the library exports symbols',
              [] if symbols else ['nm -D --defined-only found none in ' + library])

    stray = sorted(name for name in symbols if not name.startswith(PREFIX))
    tap.check(not stray, 'every exported symbol starts with %s' % PREFIX,
              ['exported: %s (%s)' % (name, symbols[name]) for name in stray])

    if gir:
        try:
            in_gir = gir_functions(gir)
        except (OSError, ET.ParseError) as e:
            tap.check(False, 'the GIR %s can be read' % gir, [str(e)])
            return tap.finish()

        functions = {name for name, kind in symbols.items()
                     if kind in FUNCTION_TYPES}
        data = sorted(name for name, kind in symbols.items()
                      if kind not in FUNCTION_TYPES)

        missing = sorted(functions - in_gir)
        tap.check(not missing, 'every exported function is in the GIR',
                  ['not in the GIR: ' + name for name in missing])

        unexported = sorted(in_gir - functions)
        tap.check(not unexported, 'every function in the GIR is exported',
                  ['not exported: ' + name for name in unexported])

        tap.check(not data, 'the library exports no data symbols',
                  ['data: %s (%s)' % (name, symbols[name]) for name in data])
    else:
        tap.diag('no GIR given (introspection disabled): GIR checks not run')

    return tap.finish()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
