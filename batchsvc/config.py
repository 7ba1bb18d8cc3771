"""Configuration: one TOML file, decoded strictly into attrs classes, with env overrides.

A bad file fails at start with the path of the bad field (`$.limits.max_operations: ...`).
Environment overrides, for secrets and ports: BATCHSVC_HOST, BATCHSVC_PORT, BATCHSVC_KEYS_FILE,
BATCHSVC_LOG_LEVEL. Relative paths in the file are relative to the working directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import cattrs
from attrs import asdict, define, field, frozen

# Raised by plugins too, so it lives in `errors`; imported from here as well.
from batchsvc.errors import ConfigError as ConfigError
from batchsvc.limits import Limits


@frozen
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@frozen
class RateLimitConfig:
    """Per API key, fixed windows. The spec's 10 batches a minute is the default."""

    batch_requests: int = 10
    other_requests: int = 600
    window_seconds: int = 60


@frozen
class AuthConfig:
    keys_file: str = "data/keys.json"


@frozen
class StorageConfig:
    """SQLite, the embedded default, keeps its file in the data folder (relative to the
    working directory, like every relative path here)."""

    backend: str = "sqlite"
    options: dict[str, Any] = field(factory=lambda: {"path": "data/batchsvc.db"})


@frozen
class EmbedderConfig:
    """An entry point of `batchsvc.embedders`, or `none` for lexical search only."""

    name: str = "wordllama"
    options: dict[str, Any] = field(factory=dict)


@frozen
class LoggingConfig:
    level: str = "info"
    json: bool = True


@define
class Config:
    server: ServerConfig = field(factory=ServerConfig)
    limits: Limits = field(factory=Limits)
    rate_limit: RateLimitConfig = field(factory=RateLimitConfig)
    auth: AuthConfig = field(factory=AuthConfig)
    storage: StorageConfig = field(factory=StorageConfig)
    embedder: EmbedderConfig = field(factory=EmbedderConfig)
    logging: LoggingConfig = field(factory=LoggingConfig)


def _strict(kind: type) -> Any:
    """A hook that accepts only the exact TOML type: no `"5"` for 5, no 1 for true."""

    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise ValueError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    return structure


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    for kind in (str, int, float, bool):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook_func(
        lambda kind: kind == dict[str, Any], lambda value, _: _table(value)
    )
    return converter


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table, got {type(value).__name__}")
    return value


CONVERTER = _converter()
ENV_OVERRIDES = {
    "BATCHSVC_HOST": ("server", "host", str),
    "BATCHSVC_PORT": ("server", "port", int),
    "BATCHSVC_KEYS_FILE": ("auth", "keys_file", str),
    "BATCHSVC_LOG_LEVEL": ("logging", "level", str),
}


def _apply_env(raw: dict[str, Any], env: dict[str, str]) -> None:
    for name, (section, key, kind) in ENV_OVERRIDES.items():
        if name in env:
            try:
                value = kind(env[name])
            except ValueError:
                raise ConfigError(f"{name}={env[name]!r} is not a valid {kind.__name__}") from None
            raw.setdefault(section, {})[key] = value


def parse_config(raw: dict[str, Any], source: str, env: dict[str, str] | None = None) -> Config:
    _apply_env(raw, dict(os.environ) if env is None else env)
    try:
        config = CONVERTER.structure(raw, Config)
    except cattrs.BaseValidationError as error:
        problems = "; ".join(cattrs.transform_error(error, path="$"))
        raise ConfigError(f"{source}: {problems}") from None
    for name, value in asdict(config.limits).items():
        if value < 1:
            raise ConfigError(f"{source}: $.limits.{name}: must be at least 1, got {value}")
    for name in ("batch_requests", "other_requests", "window_seconds"):
        if getattr(config.rate_limit, name) < 1:
            raise ConfigError(f"{source}: $.rate_limit.{name}: must be at least 1")
    if not 0 <= config.server.port <= 65535:
        raise ConfigError(f"{source}: $.server.port: must be 0-65535")
    if config.logging.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{source}: $.logging.level: expected debug, info, warning or error")
    return config


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the file at `path` (or BATCHSVC_CONFIG); no file means every default."""
    environ = dict(os.environ) if env is None else env
    path = path or environ.get("BATCHSVC_CONFIG")
    if not path:
        return parse_config({}, "defaults", environ)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(raw, str(path), environ)
