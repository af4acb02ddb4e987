#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle.

For every crate under crates/ (its src/), each top-level module (src/X.rs or
src/X/) is a node, and a path `crate::Y…` (or `super::Y…` written in a
top-level module's own file) in the production code of module X is an edge
X -> Y. Code under `#[cfg(test)]` modules and comments (doc links included)
are left out: tests may reach across modules, the shipped code may not loop.
Any strongly connected set of two or more modules is a cycle; each is printed
with one path through it, and the exit status is 1.

    scripts/check-module-cycles.py             # check the workspace
    scripts/check-module-cycles.py --self-test # prove it finds a cycle

Run by .ci/run.
"""

import os
import re
import sys
import tempfile

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `crate::x` but not `$crate::x` (macros) or `relay_crate::x`.
PATH = re.compile(r"(?<![\w$])(crate|super)::")


def production_lines(text):
    """The file without `#[cfg(test)]` modules and comment-only lines."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped == "#[cfg(test)]" and i + 1 < len(lines):
            nxt = lines[i + 1]
            m = re.match(r"^(\s*)(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{\s*$", nxt)
            if m:
                indent = m.group(1)
                j = i + 2
                while j < len(lines) and lines[j] != indent + "}":
                    j += 1
                i = j + 1
                continue
            if re.match(r"^\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*;\s*$", nxt):
                i += 2
                continue
        if not stripped.startswith("//"):
            # A trailing comment is not code either.
            out.append(line.split("//", 1)[0] if "//" in line and '"' not in line else line)
        i += 1
    return "\n".join(out)


def braced(text, start):
    """The text inside the `{…}` opening at text[start]."""
    depth = 0
    for k in range(start, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : k]
    return text[start + 1 :]


def first_segments(group):
    """Top-level names of a `{a, b::c, d::{e}}` group."""
    names, depth, current = [], 0, ""
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(current)
            current = ""
            continue
        if depth == 0:
            current += ch
    names.append(current)
    found = []
    for name in names:
        m = IDENT.match(name.strip())
        if m:
            found.append(m.group(0))
    return found


def referenced(code, allow_super):
    """Top-level module names this code reaches through `crate::`."""
    names = set()
    for m in PATH.finditer(code):
        if m.group(1) == "super" and not allow_super:
            continue
        rest = code[m.end() :]
        if rest.startswith("{"):
            names.update(first_segments(braced(code, m.end())))
        else:
            ident = IDENT.match(rest)
            if ident:
                names.add(ident.group(0))
    return names


def module_graph(src):
    """{module: {modules it uses}} for the crate whose src/ is `src`."""
    modules = set()
    for entry in os.listdir(src):
        path = os.path.join(src, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            modules.add(entry[:-3])
        elif os.path.isdir(path) and not entry.startswith("."):
            modules.add(entry)
    graph = {m: set() for m in modules}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src).split(os.sep)
            module = rel[0][:-3] if len(rel) == 1 else rel[0]
            if module not in graph:
                continue
            own_file = len(rel) == 1 or rel[1:] == ["mod.rs"]
            with open(path, encoding="utf-8") as f:
                code = production_lines(f.read())
            for target in referenced(code, allow_super=own_file):
                if target in modules and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph):
    """Strongly connected sets of two or more modules (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def one_loop(graph, component):
    """A path through the component that comes back to its start."""
    start = component[0]
    members = set(component)
    path, seen = [start], {start}
    node = start
    while True:
        nexts = sorted(w for w in graph[node] if w in members)
        if start in nexts and len(path) > 1:
            return path + [start]
        unseen = [w for w in nexts if w not in seen]
        node = unseen[0] if unseen else nexts[0]
        if node in seen:
            return path + [node]
        path.append(node)
        seen.add(node)


def check(crates_dir):
    failed = False
    for crate in sorted(os.listdir(crates_dir)):
        src = os.path.join(crates_dir, crate, "src")
        if not os.path.isdir(src):
            continue
        graph = module_graph(src)
        for component in cycles(graph):
            failed = True
            print(
                f"{crate}: module cycle: {' -> '.join(one_loop(graph, component))}"
                f" (modules {', '.join(component)})"
            )
    return failed


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "demo", "src")
        os.makedirs(os.path.join(src, "queue"))
        files = {
            "lib.rs": "pub mod pipeline;\npub mod queue;\npub mod event;\n",
            "event.rs": "pub struct E;\n",
            # Tests and doc links do not count.
            "pipeline.rs": "use crate::event::E;\n/// See [`crate::queue`].\n"
            "#[cfg(test)]\nmod tests {\n    use crate::queue::Q;\n}\n",
            "queue/mod.rs": "pub mod disk;\nuse crate::{event::E, pipeline as p};\n",
            "queue/disk.rs": "use super::Q;\n",
        }
        for name, text in files.items():
            with open(os.path.join(src, name), "w", encoding="utf-8") as f:
                f.write(text)
        crates = os.path.join(tmp)
        assert not check(crates), "no cycle yet, but one was reported"
        # The edge back: queue::disk -> pipeline closes queue <-> pipeline.
        with open(os.path.join(src, "pipeline.rs"), "a", encoding="utf-8") as f:
            f.write("use crate::queue::disk::Limits;\n")
        print("self-test: expecting one cycle to be reported:")
        assert check(crates), "the cycle pipeline <-> queue was not found"
        graph = module_graph(src)
        assert cycles(graph) == [["pipeline", "queue"]], cycles(graph)
    print("self-test: ok")


if __name__ == "__main__":
    if "--self-test" in sys.argv[1:]:
        self_test()
        sys.exit(0)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")
    if check(root):
        print("module cycles found: move the shared types below both modules")
        sys.exit(1)
    print("no module cycles")
