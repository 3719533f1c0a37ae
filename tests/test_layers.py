"""The library's import structure: packages import downward only, modules import each other
without circles, every import names a module that exists, and no module outgrows the size
limit.

Layers: io <- sky <- clusters, bubbles <- plots: a module of a layer imports nothing from a
layer above it (its own layer and those below are fine; geometry and the top-level helpers
such as skydetect.config sit below everything). The checks read one graph, module ->
modules it imports, built from the source with ast: every import counts, also those inside
functions and under ``if TYPE_CHECKING:``, so a lazy import hides neither a layer breach nor
a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

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


def module_name(path: Path, root: Path) -> str:
    """Dotted name of the module at ``path`` under ``root`` (the directory holding the top
    package): a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, name: str, is_package: bool, known: set[str]) -> dict[str, int]:
    """Every module of ``name``'s top package that the source of module ``name`` imports,
    anywhere in it, with the line of its first import. Relative imports are resolved against
    the module's package; ``from a.b import c`` imports module ``a.b.c`` when that is one of
    ``known``, else ``a.b`` (c is a name defined in it). A name not in ``known`` is an import
    of a module that does not exist."""
    top = name.split(".")[0]
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for n in names:
            if n.split(".")[0] == top and n != name:
                found.setdefault(n, node.lineno)
    return found


def all_imports(root: Path, top: str) -> tuple[set[str], dict[str, dict[str, int]]]:
    """The modules of package ``top`` under ``root``, and module -> :func:`imports_of`."""
    paths = {module_name(p, root): p for p in sorted((root / top).rglob("*.py"))}
    known = set(paths)
    return known, {
        name: imports_of(p.read_text(), name, p.name == "__init__.py", known)
        for name, p in paths.items()
    }


def import_graph(root: Path, top: str) -> dict[str, dict[str, int]]:
    """Module -> {imported module: line of the first import} for package ``top``."""
    known, imports = all_imports(root, top)
    return {m: {t: line for t, line in e.items() if t in known} for m, e in imports.items()}


def unresolved_imports(root: Path, top: str) -> list[str]:
    """``module:line name`` for each import of a module of ``top`` that does not exist."""
    known, imports = all_imports(root, top)
    return [
        f"{m}:{line} {t}" for m, e in imports.items() for t, line in e.items() if t not in known
    ]


def find_cycle(graph) -> list[str]:
    """One import circle of ``graph`` (module -> imported modules) as ``[a, b, ..., a]``, or
    [] when there is none (depth-first search, nodes in sorted order: deterministic)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
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


def layer(module: str) -> str:
    """The package (layer) of a skydetect module; "" for the top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (SRC / parts[1]).is_dir()) else ""


GRAPH = import_graph(SRC.parent, "skydetect")


# ----------------------------------------------------------------------- the checker itself
def write_package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_import_parser_sees_every_form(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/io/__init__.py": "",
            "pkg/io/atomic.py": "",
            "pkg/geometry/__init__.py": "",
            "pkg/geometry/tiles.py": "",
            "pkg/clusters/__init__.py": "",
            "pkg/clusters/detect.py": "X = 1\n",
            "pkg/bubbles/__init__.py": "",
            "pkg/bubbles/catalog.py": "",
            "pkg/sky/__init__.py": "",
            "pkg/sky/physics.py": "",
            "pkg/sky/planck.py": (
                "from typing import TYPE_CHECKING\n"  # 1
                "import numpy\n"  # 2
                "import pkg.io.atomic\n"  # 3
                "from pkg.clusters.detect import X\n"  # 4: a name in the module
                "from pkg import bubbles\n"  # 5: a subpackage
                "from ..bubbles.catalog import y\n"  # 6: relative, two levels up
                "from . import physics\n"  # 7: a sibling module
                "from pkg.geometry import NAME\n"  # 8: a name in a package
                "if TYPE_CHECKING:\n"  # 9
                "    from pkg.io import atomic\n"  # 10: only for type checkers
                "def f():\n"  # 11
                "    from pkg.geometry import tiles\n"  # 12: inside a function
            ),
        },
    )
    got = import_graph(tmp_path, "pkg")["pkg.sky.planck"]
    assert got == {
        "pkg.io.atomic": 3,
        "pkg.clusters.detect": 4,
        "pkg.bubbles": 5,
        "pkg.bubbles.catalog": 6,
        "pkg.sky.physics": 7,
        "pkg.geometry": 8,
        "pkg.geometry.tiles": 12,
    }


def test_the_checker_finds_a_circle_through_lazy_and_type_checking_imports(tmp_path):
    """a -> b at the top, b -> c inside a function, c -> a under TYPE_CHECKING (through
    ``from pkg import a``): a circle the checker must report, so that it cannot pass silently."""
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import g\n",
            "pkg/b.py": "def g():\n    from .c import h\n",
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
            "pkg/d.py": "import pkg.a\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    # the same modules without the lazy import: no circle
    (tmp_path / "pkg/b.py").write_text("def g():\n    pass\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) == []


def test_the_cycle_finder():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b"}}) == ["b", "b"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_unresolved_imports_are_found(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg.gone import x\n",
            "pkg/b.py": "from .a import f\nimport pkg.a\n",
        },
    )
    assert unresolved_imports(tmp_path, "pkg") == ["pkg.a:2 pkg.gone"]


# ----------------------------------------------------------------------- the library
def test_the_graph_covers_the_library():
    assert len(GRAPH) == len(MODULES)
    assert "skydetect.clusters.mmf.result" in GRAPH["skydetect.clusters.mmf.peaks"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_downward_only(path):
    name = module_name(path, SRC.parent)
    forbidden = FORBIDDEN.get(layer(name), set())
    bad = sorted(
        (line, target) for target, line in GRAPH[name].items() if layer(target) in forbidden
    )
    assert not bad, f"{path.relative_to(ROOT)} imports from a layer above it: " + ", ".join(
        f"{target} (line {line})" for line, target in bad
    )


def test_no_module_imports_itself_through_others():
    """No import circle between modules, also through imports inside functions or under
    TYPE_CHECKING. A package's ``__init__`` re-exporting its modules is not a circle: the
    modules never import their package (an explicit import of it would be an edge here)."""
    cycle = find_cycle(GRAPH)
    assert not cycle, (
        "import circle: "
        + " -> ".join(f"{a} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False))
        + f" -> {cycle[-1]}"
    )


def test_every_import_names_an_existing_module():
    """A lazy import of a module that was renamed or removed fails only when it runs."""
    assert unresolved_imports(SRC.parent, "skydetect") == []


def test_no_module_exceeds_the_size_limit():
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in MODULES}
    too_long = {str(p): n for p, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
