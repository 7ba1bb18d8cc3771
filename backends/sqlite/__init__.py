"""The SQLite backend (`backend = "sqlite"`): durable memories in one file, searched from
in-memory indexes. `store` is the entry point; the other modules are its parts.

Internal: the entry-point name and options are stable, the modules are not."""

from .store import SQLiteStore

__all__ = ["SQLiteStore"]
