"""Small tools of the SQLite backend: its errors in the contract's terms, and statements that
must run to their end whatever happens to the task that sent them (rollbacks and commits)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import aiosqlite

from batchsvc.errors import BackendError, CorruptBackendError, TransientBackendError

T = TypeVar("T")
#: What a write does on the connection it is given, inside the transaction it is given.
Work = Callable[[aiosqlite.Connection], Awaitable[T]]

#: SQLite's primary result codes (the low byte of an extended one) that say what is wrong
#: with the file or its disk, as the words `/readyz` and start-up messages use.
FAULTS: dict[int, str] = {
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_NOTADB: "corrupt",
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_READONLY: "read_only",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_CANTOPEN: "cannot_open",
    sqlite3.SQLITE_BUSY: "busy",
    sqlite3.SQLITE_LOCKED: "busy",
}


def fault_of(error: BaseException | None) -> str | None:
    """The word for the SQLite error behind `error` (itself or a cause), if it is one above."""
    while error is not None:
        if isinstance(error, sqlite3.Error):
            code = getattr(error, "sqlite_errorcode", None)
            return None if code is None else FAULTS.get(code & 0xFF)
        error = error.__cause__
    return None


@contextmanager
def translated_errors() -> Iterator[None]:
    """SQLite's errors as the contract's: busy or locked may pass on a retry; a damaged file
    never will, and says so (`CorruptBackendError`, so clients are not told to retry); the
    rest (disk full, read-only, I/O) are `BackendError`: not retried within a batch, since
    they do not clear in milliseconds, but clients may retry once an operator has acted."""
    try:
        yield
    except sqlite3.Error as error:
        fault = fault_of(error)
        if fault == "corrupt":
            raise CorruptBackendError(f"sqlite: {error}") from error
        message = str(error)
        if fault == "busy" or "locked" in message or "busy" in message:
            raise TransientBackendError(f"sqlite: {message}") from error
        raise BackendError(f"sqlite: {message}") from error


async def run_to_end(awaitable: Awaitable[T]) -> tuple[T, bool]:
    """Await `awaitable` to its end even if we are cancelled meanwhile; also say if we were.

    For statements that must not be abandoned half way: aiosqlite runs them in its thread
    whatever happens to the awaiting task, and what comes after depends on their outcome.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            cancelled = True
            if task.done():
                # It finished in the same loop turn as the cancel came: its outcome stands.
                return task.result(), cancelled


async def undo(conn: aiosqlite.Connection, savepoint: str | None = None) -> None:
    """Roll back to before the work, even under cancellation; the caller re-raises."""
    if savepoint is None:
        # sqlite3's rollback() does nothing when no transaction is open (BEGIN failed).
        await run_to_end(conn.rollback())
    else:
        await run_to_end(conn.execute(f"ROLLBACK TO {savepoint}"))
        await run_to_end(conn.execute(f"RELEASE {savepoint}"))


async def commit(conn: aiosqlite.Connection) -> None:
    """COMMIT the open transaction; if it fails, roll back, so nothing of it stays."""
    try:
        # Once sent, the COMMIT happens or fails on its own: wait for it, cancelled or not.
        await run_to_end(conn.commit())
    except sqlite3.Error:
        await undo(conn)  # a failed COMMIT (busy, I/O) may leave the transaction open
        raise
