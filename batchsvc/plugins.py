"""Backends and embedders are found through the entry-point groups `batchsvc.backends` and
`batchsvc.embedders`; the entry-point name is the config value. The core never imports a
backend or an embedder module by name."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from batchsvc.config import ConfigError
from batchsvc.embedding import Embedder
from batchsvc.storage import Storage

BACKEND_GROUP = "batchsvc.backends"
EMBEDDER_GROUP = "batchsvc.embedders"
#: The config value that turns vectors off; not an entry point, so no plugin can claim it.
NO_EMBEDDER = "none"


def installed_backends() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=BACKEND_GROUP))


def load_backend(name: str, options: Mapping[str, Any]) -> Storage:
    found = [ep for ep in entry_points(group=BACKEND_GROUP) if ep.name == name]
    if not found:
        raise ConfigError(
            f"$.storage.backend: unknown backend {name!r}; installed: "
            f"{', '.join(installed_backends()) or 'none'}"
        )
    cls = found[0].load()
    try:
        backend = cls.from_options(options)
    except ValueError as error:
        raise ConfigError(f"$.storage.options: {error}") from None
    if not isinstance(backend, Storage):
        raise ConfigError(f"backend {name!r} does not implement batchsvc.storage.Storage")
    return backend


def installed_embedders() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=EMBEDDER_GROUP))


def load_embedder(name: str, options: Mapping[str, Any]) -> Embedder | None:
    """The configured embedder, built but not yet entered; None for `none`."""
    if name == NO_EMBEDDER:
        if options:
            raise ConfigError("$.embedder.options: the 'none' embedder takes no options")
        return None
    found = [ep for ep in entry_points(group=EMBEDDER_GROUP) if ep.name == name]
    if not found:
        choices = [*installed_embedders(), NO_EMBEDDER]
        raise ConfigError(
            f"$.embedder.name: unknown embedder {name!r}; installed: {', '.join(choices)}"
        )
    cls = found[0].load()
    try:
        embedder = cls.from_options(options)
    except ValueError as error:
        raise ConfigError(f"$.embedder.options: {error}") from None
    if not isinstance(embedder, Embedder):
        raise ConfigError(f"embedder {name!r} does not implement batchsvc.embedding.Embedder")
    return embedder
