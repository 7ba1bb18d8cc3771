"""Backends are found through the entry-point group `batchsvc.backends`; the entry-point name
is the config value. The core never imports a backend module by name."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from batchsvc.config import ConfigError
from batchsvc.storage import Storage

BACKEND_GROUP = "batchsvc.backends"


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
