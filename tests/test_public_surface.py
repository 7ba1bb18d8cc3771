"""The public surface is declared, complete and true.

`batchsvc.storage`, `batchsvc.embedding`, `batchsvc.search` and `batchsvc.testing` say in
`__all__` what a third party may import. Every name there exists, and a backend (an embedder)
can be written from its contract module alone: every type that the signatures and fields of its
public names spell, followed through aliases, unions and generics, is exported by that module.
The entry-point names, config keys and documented import paths keep working.
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import contextlib
import importlib
import inspect
import sys
import tomllib
import types
import typing
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest

from batchsvc import embedding, search, storage
from batchsvc.plugins import BACKEND_GROUP, EMBEDDER_GROUP
from tests.helpers.repository import ROOT

#: The checkout: the nearest folder above this file with a pyproject.toml (tests may move).
PUBLIC = (
    "batchsvc.storage",
    "batchsvc.embedding",
    "batchsvc.errors",
    "batchsvc.paging",
    "batchsvc.plugins.options",
    "batchsvc.search",
    "batchsvc.testing",
)
TOOLKIT = ("batchsvc.search.lexical", "batchsvc.search.vectors", "batchsvc.search.ranking")
#: A signature may use these modules' names without its contract re-exporting them.
STANDARD = (builtins, typing, collections.abc, contextlib, types)


def public(module: types.ModuleType) -> dict[str, Any]:
    return {name: getattr(module, name) for name in module.__all__}


def ours(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "")).startswith("batchsvc")


def annotated(name: str, value: Any) -> Iterator[tuple[str, Any, types.ModuleType]]:
    """What carries annotations in a public name: a function; a class (its fields), and each
    function it defines or inherits from batchsvc code (methods, classmethods, properties, an
    attrs class's generated `__init__`). With each, where, and the module it resolves in."""
    if inspect.isfunction(value):
        yield name, value, sys.modules[value.__module__]
    if not isinstance(value, type):
        return
    yield name, value, sys.modules[value.__module__]
    for klass in value.__mro__:
        if not ours(klass):
            continue
        for member, attribute in vars(klass).items():
            if isinstance(attribute, classmethod | staticmethod):
                attribute = attribute.__func__
            elif isinstance(attribute, property):
                attribute = attribute.fget
            if inspect.isfunction(attribute) and (
                member == "__init__" or attribute.__qualname__.startswith(f"{klass.__qualname__}.")
            ):
                yield f"{name}.{member}", attribute, sys.modules[klass.__module__]


def hints(obj: Any, module: types.ModuleType) -> Iterator[tuple[str, Any]]:
    """Each annotation as written (a string, with postponed evaluation; "" for one inherited
    from a base class) and as resolved."""
    written = dict(getattr(obj, "__annotations__", {}))
    if isinstance(obj, type):  # each base's fields resolve in the base's own module
        resolved = typing.get_type_hints(obj)
    else:
        resolved = typing.get_type_hints(obj, globalns=vars(module))
    for key, hint in resolved.items():
        yield str(written.get(key, "")), hint


def classes_in(hint: Any) -> Iterator[type]:
    """Every class a resolved hint reaches, through unions, generics and Callable."""
    if isinstance(hint, type) and not typing.get_args(hint):
        yield hint
    origin = typing.get_origin(hint)
    if isinstance(origin, type):
        yield origin
    for arg in typing.get_args(hint):
        for item in arg if isinstance(arg, list) else [arg]:  # Callable's parameters: a list
            if not isinstance(item, str | int | bool | types.EllipsisType):  # Literal, `...`
                yield from classes_in(item)


def spelled(written: str, module: types.ModuleType) -> Iterator[str]:
    """The project's names an annotation spells, aliases included (`Sequence[ToCreate]` spells
    `ToCreate`); not the standard library's, nor a module such as `np`."""
    if not written:
        return
    for node in ast.walk(ast.parse(written, mode="eval")):
        if not isinstance(node, ast.Name):
            continue
        if any(hasattr(standard, node.id) for standard in STANDARD):
            continue
        if isinstance(getattr(module, node.id, None), types.ModuleType):
            continue
        yield node.id


def named_types(module: types.ModuleType) -> dict[str, set[str]]:
    """Each project type or alias that the annotations of `module`'s public names use, with
    where: name -> the public names whose signatures or fields use it."""
    found: dict[str, set[str]] = {}
    for name, value in public(module).items():
        if not ours(value):
            continue
        for where, obj, home in annotated(name, value):
            for written, hint in hints(obj, home):
                names = set(spelled(written, home))
                names |= {klass.__name__ for klass in classes_in(hint) if ours(klass)}
                for type_name in names:
                    found.setdefault(type_name, set()).add(where)
    return found


@pytest.mark.parametrize("name", PUBLIC + TOOLKIT)
def test_every_name_in_all_exists(name: str) -> None:
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"
    assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ repeats a name"


def test_the_toolkit_package_exports_what_its_modules_declare() -> None:
    """`batchsvc.search` re-exports each module's `__all__`, and nothing else."""
    declared: dict[str, Any] = {}
    for name in TOOLKIT:
        declared |= public(importlib.import_module(name))
    assert set(search.__all__) == set(declared)
    for name in search.__all__:
        assert getattr(search, name) == declared[name], name


@pytest.mark.parametrize(
    ("contract", "sure"),
    [(storage, {"Memory", "Vector", "ToCreate", "Filter", "Compare"}), (embedding, {"Vector"})],
    ids=["batchsvc.storage", "batchsvc.embedding"],
)
def test_every_type_the_signatures_name_is_exported_by_the_contract(
    contract: types.ModuleType, sure: set[str]
) -> None:
    """A backend is written from `batchsvc.storage` alone, an embedder from
    `batchsvc.embedding`: whatever their public signatures and fields name, it exports."""
    named = named_types(contract)
    assert sure <= set(named), "the signatures were not all read"
    missing = {name: sorted(where) for name, where in named.items() if name not in contract.__all__}
    assert not missing, f"{contract.__name__} uses these without exporting them: {missing}"
    for name in named:
        assert getattr(contract, name) is not None


def test_the_toolkit_s_types_come_from_it_or_from_the_storage_contract() -> None:
    """A backend that ranks with `batchsvc.search` finds every type its functions name in
    `batchsvc.search` or `batchsvc.storage`."""
    named = named_types(search)
    missing = {
        name: sorted(where)
        for name, where in named.items()
        if name not in search.__all__ and name not in storage.__all__
    }
    assert not missing, f"the toolkit uses these, exported by neither: {missing}"


def test_the_storage_contract_exports_what_its_docstrings_promise() -> None:
    """Beyond the signatures: the filter semantics to evaluate and the errors to raise."""
    promised = {"matches", "FieldError", "TextChanged", "BackendError", "TransientBackendError"}
    promised |= {"CorruptBackendError", "And", "Or", "Compare", "Member"}
    assert promised <= set(storage.__all__)
    assert embedding.Vector is storage.Vector


class TestWhatMustKeepWorking:
    """The entry points, config keys and import paths that the README and docs/ give."""

    def test_entry_point_names(self) -> None:
        backends = {ep.name: ep.value for ep in entry_points(group=BACKEND_GROUP)}
        embedders = {ep.name: ep.value for ep in entry_points(group=EMBEDDER_GROUP)}
        assert {"memory", "sqlite"} <= set(backends)
        assert {"wordllama", "minilm"} <= set(embedders)
        for value in [*backends.values(), *embedders.values()]:
            module, _, attribute = value.partition(":")
            assert hasattr(importlib.import_module(module), attribute), value

    def test_config_keys(self) -> None:
        config = tomllib.loads((ROOT / "config" / "default.toml").read_text())
        assert config["storage"]["backend"] == "sqlite"
        assert "path" in config["storage"]["options"]
        assert config["embedder"]["name"] == "wordllama"

    @pytest.mark.parametrize(
        "path",
        [
            "batchsvc.storage.Storage",
            "batchsvc.storage.MemoryOps",
            "batchsvc.storage.CreatesMany",
            "batchsvc.storage.ChangesMany",
            "batchsvc.storage.DurableVectors",
            "batchsvc.storage.ChecksReadiness",
            "batchsvc.embedding.Embedder",
            "batchsvc.embedding.embedding_text",
            "batchsvc.testing.StorageConformance",
            "batchsvc.testing.conformance.StorageConformance",
            "batchsvc.search.lexical.LexicalIndex",
            "batchsvc.search.vectors.VectorIndex",
            "batchsvc.search.ranking.ranked",
            "batchsvc_backends.memory.MemoryStore",
            "batchsvc_backends.sqlite.SQLiteStore",
        ],
    )
    def test_documented_import_paths(self, path: str) -> None:
        module, _, attribute = path.rpartition(".")
        assert hasattr(importlib.import_module(module), attribute)
