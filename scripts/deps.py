#!/usr/bin/env python3
"""Include graph of src/ (and tools/): fails on a cycle between files or between directories.

Usage: scripts/deps.py [--files]

Every `#include "x/y.h"` is an edge from the including file's directory to the header's. src/model/
holds two layers: the shared plumbing the networks include (model.h, hparams.h, arch.h, net_gguf.h
and their .c files), and the files that include the networks (model.c: the cosy_model_* API;
convert.c: the converter), shown as `model (api)`. The directory graph, with that split, must have
no cycle; so must the file graph (a header cycle is hidden by include guards, not harmless).
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCAN = ["src", "tools"]
API = {"src/model/model.c", "src/model/convert.c"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def node(path):
    if path in API:
        return "model (api)"
    d = os.path.dirname(path)
    return d[4:] if d.startswith("src/") else d


def resolve(inc, src):
    for base in (os.path.join(ROOT, "src"), os.path.join(ROOT, "include"), os.path.dirname(os.path.join(ROOT, src))):
        p = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(p):
            return os.path.relpath(p, ROOT)
    return None


def cycle(graph):
    """One cycle of graph (dict node -> set of nodes) as a list, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def main():
    files = {}
    for top in SCAN:
        for d, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                if name.endswith((".c", ".h")):
                    rel = os.path.relpath(os.path.join(d, name), ROOT)
                    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                        files[rel] = [r for r in (resolve(i, rel) for i in INCLUDE.findall(f.read())) if r]
    file_graph = {f: set(incs) for f, incs in files.items()}
    dir_graph, via = {}, {}
    for f, incs in files.items():
        for inc in incs:
            if inc.startswith("include/"):
                continue
            a, b = node(f), node(inc)
            if a != b:
                dir_graph.setdefault(a, set()).add(b)
                via.setdefault((a, b), set()).add(os.path.basename(inc))
    for a in sorted(dir_graph):
        print(f"{a:14s} -> " + ", ".join(sorted(dir_graph[a])))
    if "--files" in sys.argv:
        for (a, b), hs in sorted(via.items()):
            print(f"  {a} -> {b}: {' '.join(sorted(hs))}")
    bad = 0
    for name, g in (("file", file_graph), ("directory", dir_graph)):
        c = cycle(g)
        if c:
            print(f"{name} include cycle: " + " -> ".join(c))
            bad = 1
    if not bad:
        print("no include cycle between files or directories")
    return bad


if __name__ == "__main__":
    sys.exit(main())
