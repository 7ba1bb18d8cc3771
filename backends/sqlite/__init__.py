"""The SQLite backend (`backend = "sqlite"`): durable memories in one file, searched from
in-memory indexes. `store` is the entry point; the other modules are its parts."""

from .store import SQLiteStore

__all__ = ["SQLiteStore"]
