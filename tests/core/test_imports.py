"""The import graph: no package imports one that imports it back, no module cycle, and no
private name imported across packages (by the library, the CLI or the benchmarks).

Every import statement counts, those inside functions too (a lazy import is still a
dependency: it only hides the loop until the day it runs first).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Folders of the source tree and the dotted names they are installed under.
SOURCES = {"pseudolabel": REPO / "pseudolabel", "pseudolabel.cli": REPO / "cli"}


def module_files(sources: Mapping[str, Path]) -> dict[str, Path]:
    """{dotted module name: file} of every .py file under each source folder."""
    out = {}
    for prefix, folder in sources.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def imported_names(module: str, path: Path) -> Iterable[tuple[str, str | None]]:
    """(imported module, imported name or None) of every import statement of a file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """{module: the project modules it imports} (``from a import b`` with b a module -> a.b)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        deps = graph.setdefault(module, set())
        for target, name in imported_names(module, path):
            if name and f"{target}.{name}" in modules:
                target = f"{target}.{name}"
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                deps.add(target)
    return graph


def package_of(module: str) -> str:
    """The unit a loop is checked between: ``pseudolabel.<first part>`` (a subpackage or a
    top-level module); the CLI is one unit."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def package_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The module graph collapsed to :func:`package_of` units (the root ``pseudolabel``
    package itself, which only re-exports lazily, is left out)."""
    out: dict[str, set[str]] = {}
    for module, deps in graph.items():
        a = package_of(module)
        for dep in deps:
            b = package_of(dep)
            if a != b and "pseudolabel" not in (a, b):
                out.setdefault(a, set()).add(b)
    return out


def private_imports(files: Mapping[str, Path], root: Path = REPO) -> list[str]:
    """``file: target.name`` (paths relative to ``root``) for each private name (a leading
    ``_``) that ``files`` import from another package of the project."""
    bad = []
    for module, path in files.items():
        for target, name in imported_names(module, path):
            if not target.startswith("pseudolabel"):
                continue
            if package_of(target) == package_of(module):
                continue
            names = target.split(".") + ([name] if name else [])
            if any(part.startswith("_") and not part.startswith("__") for part in names):
                bad.append(f"{path.relative_to(root)}: {target}{'.' + name if name else ''}")
    return bad


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return module_files(SOURCES)


def test_no_package_imports_one_that_imports_it_back(modules: dict[str, Path]) -> None:
    assert cycles(package_graph(import_graph(modules))) == []


def test_no_module_import_cycle(modules: dict[str, Path]) -> None:
    assert cycles(import_graph(modules)) == []


def test_no_private_name_imported_across_packages(modules: dict[str, Path]) -> None:
    benchmarks = {f"benchmarks.{p.stem}": p for p in sorted((REPO / "benchmarks").glob("*.py"))}
    assert private_imports({**modules, **benchmarks}) == []


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """A package pair importing each other (one lazily, in a function), a module cycle inside a
    package and a private import are all reported."""
    root = tmp_path / "pseudolabel"
    files = {
        "a/__init__.py": "",
        "a/x.py": "from pseudolabel.b.y import helper\n",
        "b/__init__.py": "",
        "b/y.py": "def helper():\n    from pseudolabel.a import x\n",
        "c/__init__.py": "",
        "c/p.py": "from . import q\n",
        "c/q.py": "from pseudolabel.c.p import thing\nfrom pseudolabel.b.y import _hidden\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    found = module_files({"pseudolabel": root})
    graph = import_graph(found)
    assert cycles(package_graph(graph)) == [["pseudolabel.a", "pseudolabel.b"]]
    assert ["pseudolabel.c.p", "pseudolabel.c.q"] in cycles(graph)
    assert private_imports(found, tmp_path) == ["pseudolabel/c/q.py: pseudolabel.b.y._hidden"]
