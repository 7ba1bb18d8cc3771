"""The documents say what the code is.

Two kinds of drift fail here (as Datasette's test fails when a plugin hook is missing from its
documentation):

- a citation of something a fresh clone does not have: a repository path (`backends/...`,
  `docs/...`, any top-level folder) or a relative link that names no file, or a dotted path
  (`batchsvc.<module>...`, `batchsvc_backends.<module>...`) that does not import, in the
  README, `docs/`, a docstring or comment, or the text of `bench/`, `config/`, `scripts/` and
  `.ci/` (the changelog's links are checked; its history names what was, as it was);
- a contract whose page misses one of its members: every method and attribute of each
  `batchsvc.storage` protocol has its heading in `docs/writing-a-backend.md`, and each of
  `batchsvc.embedding.Embedder` in `docs/embedders.md`, under the protocol's own heading; and
  a heading there names no member that is gone.

The binding documents in `docs/spec/` are copies, kept verbatim, and are not checked.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import io
import re
import tokenize
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsvc import embedding, search, storage, testing
from tests.helpers.repository import ROOT

#: The checkout: the nearest folder above this file with a pyproject.toml (tests may move).
#: Copies of documents written outside the repository: their words are not ours to change.
VERBATIM = {ROOT / "docs" / "spec" / name for name in ("API.md", "DESIGN.md", "FACTS.md")} | {
    ROOT / "docs" / "spec" / "batch-operations-api.md"
}
#: History: it names modules and paths as they were when each change was made.
HISTORY = {ROOT / "CHANGELOG.md"}
PY_FOLDERS = ("batchsvc", "backends", "bench", "tests", "scripts")
TEXT = ("*.md", "*.toml", "*.txt", "*.cfg")


def _ignored(name: str) -> bool:
    """Whether .gitignore keeps this top-level name out of the repository (`data/`, say)."""
    for line in (ROOT / ".gitignore").read_text().splitlines():
        pattern = line.strip().strip("/")
        if pattern and not pattern.startswith("#") and fnmatch.fnmatch(name, pattern):
            return True
    return False


#: The repository's top-level folders: a path starting with one of them is a citation.
TOP = sorted(
    p.name
    for p in ROOT.iterdir()
    if p.is_dir() and not _ignored(p.name) and (not p.name.startswith(".") or p.name == ".ci")
)
PATH = re.compile(rf"(?<![\w./\-~])((?:{'|'.join(map(re.escape, TOP))})/[\w./*\-]*)")
DOTTED = re.compile(r"(?<![\w./\-])(batchsvc(?:_backends)?(?:\.[A-Za-z_]\w*)+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _entry_point_groups() -> set[str]:
    """`batchsvc.backends` and `batchsvc.embedders` are names of groups, not modules."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["entry-points"])


GROUPS = _entry_point_groups()


def documents() -> Iterator[Path]:
    """The README, the changelog, our pages under docs/, and the text files of the tree."""
    for path in sorted(ROOT.glob("*.md")):
        yield path
    for folder in ("docs", "bench", "config", "scripts", ".ci"):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or path in VERBATIM or path.suffix == ".py":
                continue
            if folder in ("scripts", ".ci") or any(path.match(p) for p in TEXT):
                yield path
    yield ROOT / "pyproject.toml"


def python_files() -> Iterator[Path]:
    yield ROOT / "setup.py"
    for folder in PY_FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """A Python file's docstrings and comments, with their first line's number."""
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        docstring = ast.get_docstring(node, clean=False)
        if docstring is not None:
            yield node.body[0].lineno, docstring
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def texts() -> Iterator[tuple[str, str]]:
    """(where, text) for everything that may cite: whole documents, and Python prose."""
    for path in documents():
        if path not in HISTORY:
            yield str(path.relative_to(ROOT)), path.read_text()
    for path in python_files():
        for line, text in prose(path):
            yield f"{path.relative_to(ROOT)}:{line}", text


def _exists(cited: str) -> bool:
    cited = cited.rstrip(".,;:")
    if "*" in cited:
        return any(ROOT.glob(cited))
    return (ROOT / cited).exists()


def _imports(dotted: str) -> bool:
    """Whether `dotted` is a module, or an attribute reached from the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_the_scan_sees_what_it_should() -> None:
    """Guards the guard: the folders, files and citations it reads are the expected ones."""
    assert {"backends", "batchsvc", "bench", "config", "docs", "scripts", "tests"} <= set(TOP)
    assert "data" not in TOP
    seen = dict(texts())
    assert "README.md" in seen and "docs/writing-a-backend.md" in seen
    assert not any(where.startswith("docs/spec/API.md") for where in seen)
    assert "batchsvc_backends.memory.MemoryStore" in DOTTED.findall(
        seen["docs/writing-a-backend.md"]
    )
    assert "backends/memory.py" in PATH.findall(seen["docs/writing-a-backend.md"])


def test_cited_paths_exist() -> None:
    missing = [
        f"{where}: {cited}"
        for where, text in texts()
        for cited in PATH.findall(text)
        if not _exists(cited)
    ]
    assert not missing, "cited, but not in the repository:\n" + "\n".join(missing)


def test_relative_links_of_the_documents_resolve() -> None:
    missing = []
    for path in documents():
        if path.suffix != ".md":
            continue
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:|#", target):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, "links to nothing:\n" + "\n".join(missing)


def test_dotted_module_paths_import() -> None:
    failing = sorted(
        {
            f"{where}: {dotted}"
            for where, text in texts()
            for dotted in DOTTED.findall(text)
            if dotted not in GROUPS and not _imports(dotted)
        }
    )
    assert not failing, "cited, but does not import:\n" + "\n".join(failing)


# The contracts and their pages -------------------------------------------------------------

BACKEND_PAGE = ROOT / "docs" / "writing-a-backend.md"
EMBEDDER_PAGE = ROOT / "docs" / "embedders.md"
PROTOCOLS: dict[Path, list[type]] = {
    BACKEND_PAGE: [
        storage.Storage,
        storage.MemoryOps,
        storage.CreatesMany,
        storage.ChangesMany,
        storage.DurableVectors,
        storage.ChecksReadiness,
    ],
    EMBEDDER_PAGE: [embedding.Embedder],
}
#: Members a protocol leaves undeclared on purpose (so that implementations without them
#: still conform), documented all the same.
UNDECLARED = {"Embedder": {"model"}}
#: Each public module whose every name its page must mention.
SURFACES = {BACKEND_PAGE: [storage, search, testing], EMBEDDER_PAGE: [embedding]}


def members(protocol: type) -> set[str]:
    """What the protocol itself declares: its attributes and its methods, dunders included
    (`__aenter__`); not what it inherits from another protocol, nor typing's machinery."""
    names = set(vars(protocol).get("__annotations__", {}))
    for name, value in vars(protocol).items():
        function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        qualname = getattr(function, "__qualname__", "")
        if callable(function) and qualname.startswith(f"{protocol.__qualname__}."):
            names.add(name)
    return names


HEADING = re.compile(r"^(#+)\s+(.*)$")
NAMED = re.compile(r"`(?:[\w.]+\.)?(\w+)[(`]")


def sections(page: Path) -> list[tuple[int, str, list[str]]]:
    """(level, heading, lines up to the next heading of the same or a higher level)."""
    lines = page.read_text().splitlines()
    found = []
    for number, line in enumerate(lines):
        match = HEADING.match(line)
        if not match:
            continue
        level = len(match.group(1))
        end = next(
            (
                k
                for k in range(number + 1, len(lines))
                if (m := HEADING.match(lines[k])) and len(m.group(1)) <= level
            ),
            len(lines),
        )
        found.append((level, match.group(2), lines[number:end]))
    return found


def section_of(page: Path, protocol: type) -> tuple[int, list[str]]:
    for level, heading, lines in sections(page):
        if re.match(rf"`{protocol.__name__}`", heading):
            return level, lines
    raise AssertionError(f"{page.name} has no heading for `{protocol.__name__}`")


def cases() -> list[Any]:
    return [
        pytest.param(page, protocol, id=protocol.__name__)
        for page, protocols in PROTOCOLS.items()
        for protocol in protocols
    ]


@pytest.mark.parametrize(("page", "protocol"), cases())
def test_every_member_of_a_contract_has_its_heading(page: Path, protocol: type) -> None:
    level, lines = section_of(page, protocol)
    headed = {
        named.group(1)
        for line in lines[1:]
        if (match := HEADING.match(line)) and len(match.group(1)) == level + 1
        if (named := NAMED.search(match.group(2)))
    }
    expected = members(protocol) | UNDECLARED.get(protocol.__name__, set())
    assert members(protocol), "no member was found: the introspection is broken"
    assert not expected - headed, (
        f"{page.name}, section `{protocol.__name__}`: no heading for {sorted(expected - headed)}"
    )
    assert not headed - expected, (
        f"{page.name}, section `{protocol.__name__}`: headings for what it does not have: "
        f"{sorted(headed - expected)}"
    )


@pytest.mark.parametrize("page", list(SURFACES), ids=lambda p: p.name)
def test_every_public_name_is_on_its_page(page: Path) -> None:
    text = page.read_text()
    missing = [
        f"{module.__name__}.{name}"
        for module in SURFACES[page]
        for name in module.__all__
        if not re.search(rf"`(?:[\w.]+\.)?{re.escape(name)}\b", text)
    ]
    assert not missing, f"{page.name} does not mention: {missing}"


def test_members_sees_each_kind_of_member() -> None:
    """A classmethod, a dunder, a plain method and an attribute, and nothing inherited."""
    assert {"from_options", "__aenter__", "ping", "supports_vectors"} <= members(storage.Storage)
    assert "create" not in members(storage.Storage)
    assert members(storage.MemoryOps) == {"create", "get", "update", "delete", "search", "list"}
