"""For tests of the SQLite backend: a store on a file, and ways to make it misbehave on cue.
The `db` and `store` fixtures are in tests/conftest.py."""

from __future__ import annotations

import time
from pathlib import Path

from batchsvc_backends.sqlite.store import SQLiteStore


def open_store(path: Path) -> SQLiteStore:
    """A SQLite store on `path`, built as the service builds it; not yet entered."""
    return SQLiteStore.from_options({"path": str(path)})


class Boom(Exception):
    """Raised inside a transaction to roll it back."""


def hold_the_loop(seconds: float) -> None:
    """Hold the event loop (not sleep in it) while SQLite's thread runs. time.sleep releases the
    GIL, so the thread runs at full speed; a busy loop would starve it of the GIL."""
    time.sleep(seconds)
