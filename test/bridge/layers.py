#!/usr/bin/env python3
"""Fail on a cycle among the bridge's modules: by #include, and by calls.

Include level: a module is a basename in bridge/ (x.c with x.h).  Module X
depends on Y when x.c or x.h has #include "y.h" for a bridge header y.h.

Call level (with --objects DIR): object A depends on object B when A has an
undefined symbol that B defines (nm), over DIR/x.o for every bridge/x.c and
DIR/shared_*.o (the build's objects: make bridge/sse-bridge).  This sees what
the includes miss: a call or a global reached through a header that is not
the module's own (an extern in a shared header, a static inline function).

The lower layers report upward through callbacks wired in main.c, so both
graphs must stay acyclic.  Usage: layers.py [bridge-dir] [--objects DIR];
prints the include layers (each module after everything it depends on),
then the call layers when --objects is given; on a cycle prints each one
found (one per strongly connected group, with the symbols of each edge)
and exits 1.
"""
import glob
import os
import re
import subprocess
import sys

args = sys.argv[1:]
objdir = None
if '--objects' in args:
    i = args.index('--objects')
    if i + 1 >= len(args):
        sys.exit('usage: layers.py [bridge-dir] [--objects DIR]')
    objdir = args[i + 1]
    del args[i:i + 2]
root = args[0] if args else os.path.join(os.path.dirname(__file__), '..', '..', 'bridge')


def include_graph():
    files = [f for f in os.listdir(root) if f.endswith(('.c', '.h'))]
    mods = {os.path.splitext(f)[0] for f in files}
    deps = {m: {} for m in mods}
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.M)
    for f in files:
        m = os.path.splitext(f)[0]
        with open(os.path.join(root, f), encoding='utf-8') as fh:
            for d in inc.findall(fh.read()):
                if d in mods and d != m:
                    deps[m].setdefault(d, set()).add(d + '.h')
    return deps


def nm(obj, *flags):
    out = subprocess.run(['nm', '-P', *flags, obj], check=True, capture_output=True,
                         text=True).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def call_graph(d):
    # the objects of bridge/*.c and of the shared sources (shared_*.o), not
    # a stale object left by a source since removed
    srcs = {os.path.splitext(f)[0] for f in os.listdir(root) if f.endswith('.c')}
    objs = sorted(o for o in glob.glob(os.path.join(d, '*.o'))
                  if os.path.basename(o)[:-2] in srcs or os.path.basename(o).startswith('shared_'))
    if not objs:
        sys.exit('no object files in %s (build the bridge first)' % d)
    defined, undef = {}, {}
    for o in objs:
        m = os.path.basename(o)
        undef[m] = {f[0] for f in nm(o, '-u')}
        for f in nm(o, '-g', '--defined-only'):
            defined.setdefault(f[0], m)
    deps = {m: {} for m in undef}
    for m, syms in undef.items():
        for s in syms:
            d = defined.get(s)
            if d is not None and d != m:
                deps[m].setdefault(d, set()).add(s)
    return deps


def sccs(deps):
    """Tarjan's strongly connected components (iterative), each as a list."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]
    for root_ in sorted(deps):
        if root_ in index:
            continue
        work = [(root_, iter(sorted(deps[root_])))]
        index[root_] = low[root_] = n[0]
        n[0] += 1
        stack.append(root_)
        on.add(root_)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = n[0]
                    n[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(deps[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def one_cycle(deps, comp, start):
    """A shortest cycle through start within comp (breadth first)."""
    members = set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(deps[v]):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    path.reverse()
                    return path + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start, start]


def check(kind, deps):
    cycles = [c for c in sccs(deps) if len(c) > 1]
    for comp in cycles:
        seen = set()
        print('%s cycle among bridge modules %s:' % (kind, ' '.join(sorted(comp))), file=sys.stderr)
        for start in sorted(comp):     # the shortest cycle through each member
            cyc = one_cycle(deps, comp, start)
            key = frozenset(zip(cyc, cyc[1:]))
            if key in seen:
                continue
            seen.add(key)
            print('  ' + ' -> '.join(cyc), file=sys.stderr)
            for a, b in zip(cyc, cyc[1:]):
                syms = sorted(deps[a][b])
                more = ' ...' if len(syms) > 6 else ''
                print('    %s -> %s: %s%s' % (a, b, ' '.join(syms[:6]), more), file=sys.stderr)
    if cycles:
        return False
    depth = {}

    def level(m):
        if m not in depth:
            depth[m] = 1 + max((level(d) for d in deps[m]), default=-1)
        return depth[m]

    for m in deps:
        level(m)
    for lv in range(max(depth.values()) + 1):
        print('%s layer %d: %s' % (kind, lv, ' '.join(sorted(m for m in deps if depth[m] == lv))))
    return True


ok = check('include', include_graph())
if objdir is not None:
    ok = check('call', call_graph(objdir)) and ok
sys.exit(0 if ok else 1)
