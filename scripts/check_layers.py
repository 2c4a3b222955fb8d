#!/usr/bin/env python3
"""Checks the import structure of runtime/src: no cycle among its files, and no layer that
uses a layer below it (the order is the one runtime/src/lib.rs documents).

Reads every `crate::…` path of every file (use declarations and inline paths, outside
`#[cfg(test)]` modules) and resolves it to the file that defines the module it names.
Exits 1 and names the offending imports if either rule is broken.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime", "src")

# Lower layers first; a file may import its own layer and the ones before it.
LAYERS = [
    {"call", "dapr_wire", "error", "grpc", "resources", "secrets"},
    {"state"},
    {"metrics"},
    {"resiliency"},
    {"config"},
    {"cluster"},
    {"actors"},
    {"routing"},
    {"reminders", "jobs"},
    {"channels"},
    {"bindings"},
    {"api"},
    {"host"},
]


def module_of(path):
    """runtime/src/a/b.rs -> ('a', 'b'); a/mod.rs -> ('a',); lib.rs -> ()."""
    rel = os.path.relpath(path, ROOT)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    """The text without its `#[cfg(test)] mod … { … }` blocks."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def crate_paths(text):
    """Every `crate::a::b::…` path, `use crate::a::{b, c::d}` groups expanded."""
    text = re.sub(r"//[^\n]*", "", text)
    paths = []
    for m in re.finditer(r"\bcrate((?:::\w+)+)(::\{)?", text):
        head = [p for p in m.group(1).split("::") if p]
        if m.group(2):
            depth, j = 1, m.end()
            while depth and j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            for item in re.split(r",", text[m.end() : j - 1]):
                first = re.split(r"::|\s+as\s+|\{", item.strip())[0].strip()
                if first and first != "self":
                    paths.append(tuple(head + [first]))
            paths.append(tuple(head))
        else:
            paths.append(tuple(head))
    return paths


def main():
    files = {}
    for dirpath, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[module_of(path)] = path
    edges = {m: set() for m in files}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = strip_tests(f.read())
        for target in crate_paths(text):
            # The longest prefix that is a file of its own.
            for n in range(len(target), 0, -1):
                if target[:n] in files:
                    if target[:n] != module and target[:n] != module[:n]:
                        edges[module].add(target[:n])
                    break
    layer_of = {}
    for index, layer in enumerate(LAYERS):
        for top in layer:
            layer_of[top] = index
    problems = []
    for module, targets in sorted(edges.items()):
        if not module:
            continue
        if module[0] not in layer_of:
            problems.append(f"{'/'.join(module)}: in no layer (add it to LAYERS)")
            continue
        for target in sorted(targets):
            if not target:
                continue
            if layer_of.get(target[0], -1) > layer_of[module[0]]:
                problems.append(
                    f"{'/'.join(module)} uses {'::'.join(target)}, a layer above it"
                )
    # Cycles among files, by Tarjan's strongly connected components.
    index, low, stack, on_stack, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(scc)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v and v not in index:
            visit(v)
    for scc in sccs:
        problems.append("import cycle: " + " -> ".join("/".join(m) for m in sorted(scc)))
    edge_count = sum(len(t) for t in edges.values())
    if problems:
        print("\n".join(problems))
        return 1
    print(f"runtime/src: {len(files)} files, {edge_count} imports, no cycle, layers in order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
