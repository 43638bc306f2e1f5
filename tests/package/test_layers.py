"""The package's layers import downwards only, and no module imports itself back in a cycle.

Function-level (lazy) imports count: a lazy import upwards is still a dependency upwards, and
a cycle hidden in a function still makes two modules impossible to read apart.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("interp", "circuits", "probes", "app")

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "interp.errors",
            "interp.io",
            "interp.stats",
            "interp.stops",
            "interp.tokens",
            "interp.kernels",
        ),
    ),
    (
        "prompts",
        (
            "interp.organism.language",
            "interp.organism.tokenizer",
            "interp.templates",
            "interp.prompts",
        ),
    ),
    ("models", ("interp.models",)),
    ("tasks", ("interp.tasks", "interp.organism")),
    ("engine and executors", ("interp.engine", "interp.patching", "interp.execution", "probes")),
    ("run directories and the analysis shape", ("interp.runs", "interp.analysis")),
    ("analyses", ("circuits",)),
    (
        "interfaces and old import paths",
        (
            "interp",
            "interp.cli",
            "interp.bench",
            "app",
            *(f"interp.runs.{kind}" for kind in ("patch", "circuit", "demo", "eviction")),
            "interp.runs.task_vectors",
            "interp.runs.block_relevance",
        ),
    ),
]
"""Bottom first. A module belongs to the layer of its longest matching prefix."""


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its file."""

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [base, *subs]
            else:
                continue
            for target in targets:
                hit = known(target)
                if hit and hit != name:
                    edges[name].add(hit)
    return edges


def layer_of(name: str) -> int:
    best, layer = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    assert layer >= 0, f"{name} is in no layer: add it to LAYERS"
    return layer


def test_every_import_goes_down_or_sideways():
    mods = modules()
    upward = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in imports(mods).items()
        for b in targets
        if layer_of(b) > layer_of(a)
    ]
    assert not upward, "\n".join(sorted(upward))


def strongly_connected(edges: dict[str, set[str]], nodes) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    mods = modules()
    assert strongly_connected(imports(mods), sorted(mods)) == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The two rules above can fail: a planted cycle is found, and the layer map ranks the
    analyses above the run store."""
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}, "abc") == [["a", "b"]]
    assert layer_of("circuits.eviction.report") > layer_of("interp.runs.store")
    assert layer_of("interp.runs.patch") > layer_of("circuits.activation_patching")
    assert "circuits.activation_patching" in imports(modules())["interp.runs.patch"]
