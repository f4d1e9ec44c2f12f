#!/usr/bin/env python3
"""Lists which module uses which (every `crate::name` a file mentions) and
fails if any module reaches itself through the modules it uses: the crate's
modules must depend one way only (docs/architecture.md has the layers).

A module is a top-level name under src/ (src/x.rs or src/x/); a file inside
src/x/ belongs to x. `super::` inside a module is its own business."""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` names several modules at once.
GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def strip_comments(text: str) -> str:
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def uses() -> dict:
    graph = {}
    for f in sorted(SRC.rglob("*.rs")):
        m = module_of(f)
        if m in ("main", "lib"):
            continue
        text = strip_comments(f.read_text())
        names = set(REF.findall(text))
        for g in GROUP.findall(text):
            names.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", g))
        names.discard(m)
        per_file = graph.setdefault(m, {})
        per_file[str(f.relative_to(SRC.parent))] = sorted(names)
    return graph


def find_cycle(edges: dict):
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for d in sorted(edges.get(n, ())):
            if state.get(d) == "open":
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(edges):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def main() -> int:
    graph = uses()
    edges = {m: set().union(*files.values()) for m, files in graph.items()}
    for m in sorted(graph):
        print(f"{m}: {' '.join(sorted(edges[m])) or '-'}")
        for f, names in graph[m].items():
            print(f"    {f}: {' '.join(names) or '-'}")
    unknown = {d for ds in edges.values() for d in ds} - set(graph)
    if unknown:
        print(f"unknown module(s) referenced: {sorted(unknown)}", file=sys.stderr)
        return 1
    cycle = find_cycle(edges)
    if cycle:
        print("module cycle: " + " -> ".join(cycle), file=sys.stderr)
        return 1
    print("modules depend one way: no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
