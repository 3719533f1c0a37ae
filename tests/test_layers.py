"""The library's layers import downward only, and no module outgrows the size limit.

io <- sky <- clusters, bubbles <- plots: a module of a layer imports nothing from a layer
above it (its own layer and those below are fine; geometry and the top-level helpers such
as skydetect.config sit below everything). Imports are read from the source with ast, also
those inside functions, so a lazy import does not hide a cycle.
"""

from __future__ import annotations

import ast

import pytest
from conftest import ROOT

SRC = ROOT / "src" / "skydetect"
MAX_LINES = 500

# package -> the packages it must not import
FORBIDDEN = {
    "io": {"sky", "clusters", "bubbles", "plots"},
    "geometry": {"sky", "clusters", "bubbles", "plots"},
    "sky": {"clusters", "bubbles", "plots"},
    "clusters": {"bubbles", "plots"},
    "bubbles": {"clusters", "plots"},
}
MODULES = sorted(SRC.rglob("*.py"))


def skydetect_imports(source: str, package: tuple[str, ...]) -> set[tuple[str, int]]:
    """(imported skydetect package, line) for every import in ``source``, a module of
    ``package`` (e.g. ``("skydetect", "io")``); relative imports are resolved against it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join([*base, *([node.module] if node.module else [])])
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            elif node.module == "skydetect":  # from skydetect import sky
                names = [f"skydetect.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "skydetect" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def module_imports(path) -> set[tuple[str, int]]:
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    return skydetect_imports(path.read_text(), package)


def layer(path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else ""


def test_the_import_parser_sees_every_form():
    source = (
        "import skydetect.io.atomic\n"
        "from skydetect.clusters import detect\n"
        "from skydetect import plots\n"
        "from ..bubbles.catalog import x\n"
        "from . import physics\n"
        "import numpy\n"
        "def f():\n    from skydetect.geometry import tiles\n"
    )
    got = skydetect_imports(source, ("skydetect", "sky"))
    assert {name for name, _ in got} == {"io", "clusters", "plots", "bubbles", "sky", "geometry"}
    assert ("geometry", 8) in got


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_downward_only(path):
    forbidden = FORBIDDEN.get(layer(path), set())
    bad = sorted((name, line) for name, line in module_imports(path) if name in forbidden)
    assert not bad, f"{path.relative_to(ROOT)} imports from a layer above it: " + ", ".join(
        f"skydetect.{name} (line {line})" for name, line in bad
    )


def test_no_module_exceeds_the_size_limit():
    # NOTE: fails while the large modules (clusters/mmf.py, sky/planck.py) are being split
    # into sub-modules; it is the acceptance check of that split, not a flaky test.
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in MODULES}
    too_long = {str(p): n for p, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def _module_name(path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path, known: set[str]) -> set[str]:
    """The skydetect modules ``path`` imports, anywhere in it (functions, TYPE_CHECKING):
    ``from a.b import c`` names module a.b.c if that is a module, else a.b."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            candidates = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


def import_graph() -> dict[str, set[str]]:
    known = {_module_name(p) for p in MODULES}
    return {_module_name(p): _imported_modules(p, known) for p in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (module -> imported modules), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_module_imports_itself_through_others():
    """No import circle between modules, also through imports inside functions or under
    TYPE_CHECKING (a package's __init__ re-exporting its modules is not a circle: the
    modules never import their package)."""
    graph = import_graph()
    assert "skydetect.clusters.mmf.filter" in graph and graph["skydetect.clusters.mmf.filter"]
    cycle = find_cycle(graph)
    assert not cycle, "import circle: " + " -> ".join(cycle)
