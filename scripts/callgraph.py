#!/usr/bin/env python3
"""The file-level call graph of one folder, read from its object files.

    python3 scripts/callgraph.py --build build supervisor [child state ...]

For every object file of a folder (build/obj/<folder>/*.o) `nm` lists the
global symbols it defines and the ones it uses. File A calls file B when A
uses a symbol that B defines; references through a function pointer are
not calls (that is how a lower file reports upward: an operation table
wired once by main.c). The script prints each folder's edges and every
circle (a strongly connected set of more than one file), and exits 1 when
a folder has one. tests/integration/test_callgraph.py runs it on the
folders that must have none (docs/architecture.md, "Who may call whom").
"""
import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def symbols(obj):
    out = subprocess.run(["nm", "--format=posix", obj], check=True,
                         capture_output=True, text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            used.add(name)
        elif kind in "TDBRVW":  # global text, data, bss, rodata, weak
            defined.add(name)
    return defined, used


def graph(objdir, srcdir=None):
    """Objects without a source file (left over from an older tree) are
    skipped when srcdir is given."""
    files = sorted(f for f in os.listdir(objdir) if f.endswith(".o") and
                   (srcdir is None or
                    os.path.exists(os.path.join(srcdir, f[:-2] + ".c"))))
    defs, uses = {}, {}
    for f in files:
        defs[f], uses[f] = symbols(os.path.join(objdir, f))
    owner = {}
    for f in files:
        for s in defs[f]:
            owner[s] = f
    edges = {f: {} for f in files}
    for f in files:
        for s in uses[f]:
            g = owner.get(s)
            if g and g != f:
                edges[f].setdefault(g, []).append(s)
    return edges


def circles(edges):
    """Tarjan's strongly connected components, the ones of 2+ files."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--quiet", action="store_true",
                    help="print only the circles")
    ap.add_argument("folders", nargs="+")
    a = ap.parse_args()
    bad = 0
    for folder in a.folders:
        objdir = os.path.join(a.build, "obj", folder)
        if not os.path.isdir(objdir):
            print("%s: no objects in %s (build first)" % (folder, objdir))
            return 2
        srcdir = os.path.join(REPO, folder)
        edges = graph(objdir, srcdir if os.path.isdir(srcdir) else None)
        if not a.quiet:
            for f in sorted(edges):
                for g in sorted(edges[f]):
                    print("%s/%s -> %s: %s" % (folder, f[:-2], g[:-2],
                                               ", ".join(sorted(edges[f][g]))))
        found = circles(edges)
        for comp in found:
            print("%s: circle of calls: %s" % (folder,
                  " ".join(c[:-2] for c in comp)))
        if not found:
            print("%s: %d files, no circle of calls" % (folder, len(edges)))
        bad += len(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
