#!/usr/bin/env python3
"""Lists which module uses which (every `crate::name` a file mentions) and
fails if a module uses one of a lower layer than its own (the layer table
of docs/architecture.md, read from there), if a module is missing from that
table, or if any module reaches itself through the modules it uses.

A module is a top-level name under src/ (src/x.rs or src/x/); a file inside
src/x/ belongs to x. `super::` inside a module is its own business."""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ARCH = SRC.parent / "docs" / "architecture.md"
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


def layers() -> dict:
    """module -> its row in the layer table (0 for the leaves)."""
    text = ARCH.read_text()
    rows, inside = [], False
    for line in text.splitlines():
        if line.strip().startswith("| layer | modules |"):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            if set(line.replace("|", "").strip()) <= {"-", " "}:
                continue
            rows.append(re.findall(r"`([a-z_][a-z0-9_]*)`", line.split("|")[2]))
    if not rows:
        raise SystemExit(f"{ARCH}: no `| layer | modules |` table")
    return {m: i for i, names in enumerate(rows) for m in names}


def upward(edges: dict, layer: dict) -> list:
    """Uses of a module of a lower layer than the user's: (user, used)."""
    return sorted(
        (m, d) for m, ds in edges.items() for d in ds
        if m in layer and d in layer and layer[d] > layer[m]
    )


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
    layer = layers()
    missing = sorted(set(graph) - set(layer))
    if missing:
        print(f"module(s) missing from the layer table of {ARCH.name}: {missing}",
              file=sys.stderr)
        return 1
    bad = upward(edges, layer)
    for m, d in bad:
        print(f"{m} (layer {layer[m]}) uses {d} (layer {layer[d]}), a layer below its own",
              file=sys.stderr)
    if bad:
        return 1
    cycle = find_cycle(edges)
    if cycle:
        print("module cycle: " + " -> ".join(cycle), file=sys.stderr)
        return 1
    print("modules depend one way: every use goes up the layer table, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
