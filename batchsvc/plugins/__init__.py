"""Backends and embedders are found through the entry-point groups `batchsvc.backends` and
`batchsvc.embedders`; the entry-point name is the config value. The core never imports a
backend or an embedder module by name."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from batchsvc.embedding import Embedder
from batchsvc.errors import ConfigError, OptionError
from batchsvc.plugins.options import read_options
from batchsvc.storage import Storage

BACKEND_GROUP = "batchsvc.backends"
EMBEDDER_GROUP = "batchsvc.embedders"
#: The config value that turns vectors off; not an entry point, so no plugin can claim it.
NO_EMBEDDER = "none"


def installed_backends() -> list[str]:
    return _installed(BACKEND_GROUP)


def installed_embedders() -> list[str]:
    return _installed(EMBEDDER_GROUP)


def _installed(group: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=group))


def _build(group: str, kind: str, table: str, name: str, options: Mapping[str, Any]) -> Any:
    """The `kind` plugin `name` of `group`, built from its options; config errors name the
    field of the config `table` at fault."""
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        names = _installed(group)
        if group == EMBEDDER_GROUP:
            names.append(NO_EMBEDDER)
        field = "backend" if table == "storage" else "name"
        raise ConfigError(
            f"$.{table}.{field}: unknown {kind} {name!r}; installed: {', '.join(names) or 'none'}"
        )
    try:
        return found[0].load().from_options(options)
    except ValueError as error:
        raise _option_error(table, error) from None


def _option_error(table: str, error: ValueError) -> ConfigError:
    """A plugin's refusal of its options, with the path of the option when it names one
    (`OptionError`, from `batchsvc.plugins.options`), else of the table."""
    if isinstance(error, OptionError):
        return ConfigError(f"$.{table}.options.{error.option}: {error.problem}")
    return ConfigError(f"$.{table}.options: {error}")


def load_backend(name: str, options: Mapping[str, Any]) -> Storage:
    backend = _build(BACKEND_GROUP, "backend", "storage", name, options)
    if not isinstance(backend, Storage):
        raise ConfigError(f"backend {name!r} does not implement batchsvc.storage.Storage")
    return backend


def load_embedder(name: str, options: Mapping[str, Any]) -> Embedder | None:
    """The configured embedder, built but not yet entered; None for `none`."""
    if name == NO_EMBEDDER:
        try:
            read_options(options, {}, f"the {NO_EMBEDDER!r} embedder")
        except OptionError as error:
            raise _option_error("embedder", error) from None
        return None
    embedder = _build(EMBEDDER_GROUP, "embedder", "embedder", name, options)
    if not isinstance(embedder, Embedder):
        raise ConfigError(f"embedder {name!r} does not implement batchsvc.embedding.Embedder")
    return embedder
