#!/usr/bin/env python3
"""Fail on an include cycle among the bridge's modules.

A module is a basename in bridge/ (x.c with x.h).  Module X depends on Y
when x.c or x.h has #include "y.h" for a bridge header y.h.  The lower
layers report upward through callbacks wired in main.c, so this graph must
stay acyclic.  Usage: layers.py [bridge-dir]; prints the layers (each module
after everything it depends on) or the first cycle found, exit 1 on a cycle.
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..', 'bridge')
files = [f for f in os.listdir(root) if f.endswith(('.c', '.h'))]
mods = {os.path.splitext(f)[0] for f in files}
deps = {m: set() for m in mods}
inc = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.M)
for f in files:
    m = os.path.splitext(f)[0]
    with open(os.path.join(root, f), encoding='utf-8') as fh:
        for d in inc.findall(fh.read()):
            if d in mods and d != m:
                deps[m].add(d)

state, stack, depth = {}, [], {}


def visit(m):
    state[m] = 'open'
    stack.append(m)
    for d in sorted(deps[m]):
        if state.get(d) == 'open':
            cyc = stack[stack.index(d):] + [d]
            sys.exit('include cycle among bridge modules: ' + ' -> '.join(cyc))
        if d not in state:
            visit(d)
    stack.pop()
    state[m] = 'done'
    depth[m] = 1 + max((depth[d] for d in deps[m]), default=-1)


for m in sorted(mods):
    if m not in state:
        visit(m)
for level in range(max(depth.values()) + 1):
    print('layer %d: %s' % (level, ' '.join(sorted(m for m in mods if depth[m] == level))))
