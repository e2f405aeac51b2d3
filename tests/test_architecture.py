"""The import graph of lti_proctor/: no cycle, and each layer imports only what sits below it.

Parsed with `ast`, so imports inside functions count as much as those at the top of a module (a
function-level import hides a cycle, it does not remove it). Importing `a.b.c` also imports the
packages `a.b` and `a` (their __init__ runs first), so those are edges too; a package is its
__init__. The top package `lti_proctor` is the exception: its __init__ holds only create_app(),
the composition root above everything, and imports nothing of ours at module level (checked
below), so importing a submodule does not drag the rest of the tool in.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "lti_proctor"
SOURCE = Path(__file__).resolve().parent.parent / ROOT
# Modules that import nothing of ours (but extensions): anyone may import them.
BOTTOM_FLOOR = {
    "lti_proctor.timeutil",
    "lti_proctor.dbtypes",
    "lti_proctor.extensions",
    "lti_proctor.metrics",
}


@dataclass(frozen=True)
class Edge:
    """One import: `source` imports `target`, at `where` (file:line)."""

    source: str
    target: str
    where: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where})"


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name; a package is named by its __init__."""
    names: dict[str, Path] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from ... import` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The modules of ours an import statement names (a `from a import b` may name module a.b)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, module, is_package)
        yield base
        for alias in node.names:
            if f"{base}.{alias.name}" in known:
                yield f"{base}.{alias.name}"


def _with_parents(name: str) -> Iterator[str]:
    """name and the packages above it, the top package excepted (see the module docstring)."""
    parts = name.split(".")
    for end in range(len(parts), 1, -1):
        yield ".".join(parts[:end])


def import_edges() -> list[Edge]:
    """Every import between modules of the package, module- and function-level alike."""
    modules = module_names()
    known = set(modules)
    edges: dict[tuple[str, str], Edge] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for name in _imported(node, module, is_package, known):
                if name != ROOT and not name.startswith(ROOT + "."):
                    continue
                targets = list(_with_parents(name)) if name != ROOT else [ROOT]
                for target in targets:
                    if target in known and target != module:
                        where = f"{path.relative_to(SOURCE.parent)}:{getattr(node, 'lineno', 0)}"
                        edges.setdefault((module, target), Edge(module, target, where))
    return list(edges.values())


def find_cycle(edges: Iterable[Edge]) -> list[Edge] | None:
    """One import cycle as its edges, or None when the graph has none."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[Edge] = []

    def visit(node: str) -> list[Edge] | None:
        state[node] = "open"
        for edge in sorted(graph.get(node, []), key=lambda e: e.target):
            if state.get(edge.target) == "open":
                start = next(i for i, e in enumerate(path) if e.source == edge.target)
                return [*path[start:], edge] if path else [edge]
            if edge.target not in state:
                path.append(edge)
                found = visit(edge.target)
                if found:
                    return found
                path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _in(module: str, *areas: str) -> bool:
    return any(module == area or module.startswith(area + ".") for area in areas)


EDGES = import_edges()


def test_the_graph_sees_module_and_function_level_imports() -> None:
    pairs = {(e.source, e.target) for e in EDGES}

    assert ("lti_proctor.jobs.outbox", "lti_proctor.jobs.models") in pairs  # module level
    assert ("lti_proctor.cli", "lti_proctor.jobs.worker") in pairs  # inside a command
    assert ("lti_proctor.web.lti", "lti_proctor.lti") in pairs  # the package of lti.launch


def test_find_cycle_reports_the_edges_of_a_cycle() -> None:
    edges = [Edge("a", "b", "a.py:1"), Edge("b", "c", "b.py:2"), Edge("c", "a", "c.py:3")]

    assert [str(e) for e in find_cycle(edges) or []] == [
        "a -> b (a.py:1)",
        "b -> c (b.py:2)",
        "c -> a (c.py:3)",
    ]
    assert find_cycle(edges[:2]) is None


def test_no_module_imports_one_that_imports_it_back() -> None:
    cycle = find_cycle(EDGES)

    assert cycle is None, "import cycle:\n  " + "\n  ".join(str(e) for e in cycle or [])


def test_top_package_imports_nothing_of_ours_at_module_level() -> None:
    tree = ast.parse((SOURCE / "__init__.py").read_text(encoding="utf-8"))
    names = [
        name
        for node in tree.body
        for name in _imported(node, ROOT, True, set(module_names()))
        if name == ROOT or name.startswith(ROOT + ".")
    ]

    assert names == []


RULES = [
    # (who, what they must not import, what they may import at all: None = anything else)
    ("lti_proctor.jobs", (), BOTTOM_FLOOR | {"lti_proctor.jobs"}),
    (
        "lti_proctor.lti",
        (
            "lti_proctor.attempts",
            "lti_proctor.identity",
            "lti_proctor.results",
            "lti_proctor.web",
            "lti_proctor.jobs",
        ),
        None,
    ),
    (
        "lti_proctor.proctoring",
        (
            "lti_proctor.attempts",
            "lti_proctor.identity",
            "lti_proctor.results",
            "lti_proctor.web",
            "lti_proctor.jobs",
        ),
        None,
    ),
    ("lti_proctor.attempts", ("lti_proctor.web", "lti_proctor.results", "lti_proctor.lti"), None),
    ("lti_proctor.identity", ("lti_proctor.web", "lti_proctor.results", "lti_proctor.lti"), None),
]


@pytest.mark.parametrize(("area", "banned", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_layers_import_only_what_sits_below_them(
    area: str, banned: tuple[str, ...], allowed: set[str] | None
) -> None:
    wrong = [
        str(e)
        for e in EDGES
        if _in(e.source, area)
        and (_in(e.target, *banned) or (allowed is not None and not _in(e.target, *allowed)))
    ]

    assert wrong == [], f"{area} imports what sits above it:\n  " + "\n  ".join(wrong)
