"""Opening the SQLite file: the write that proves it writable, and the message an operator gets
when it is not (`batchsvc serve` prints it and exits 2)."""

from __future__ import annotations

import aiosqlite

from batchsvc.errors import BackendError

from . import settings
from .lock import StoreInUse
from .support import commit, fault_of, undo

#: What to do, by what SQLite (or the OS) said.
_ADVICE = {
    "corrupt": (
        "the file is damaged or is not an SQLite database (a truncated copy, say): restore it "
        "from a backup, or move it (and its -wal and -shm files) away to start with an empty "
        "store"
    ),
    "read_only": (
        "the file cannot be written: make it, its -wal and -shm files and its folder writable "
        "by this user (and check for a read-only mount or the immutable attribute, lsattr)"
    ),
    "disk_full": "its disk is full: free space, then start again",
}
_DEFAULT_ADVICE = (
    "check that [storage.options] path names a file in a folder that exists (or can be "
    "made), that both are writable by this user, and that the disk is healthy"
)


async def probe_write(conn: aiosqlite.Connection) -> None:
    """One real write, on `conn` in autocommit mode: BEGIN IMMEDIATE, a row, COMMIT."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await settings.touch_probe(conn)
    except BaseException:
        await undo(conn)
        raise
    await commit(conn)


def cannot_open(path: str, error: BaseException) -> str:
    """One paragraph: which file, what SQLite or the OS said, and what to do."""
    if isinstance(error, StoreInUse):
        return str(error)
    if isinstance(error, OSError):
        said = f"{error.strerror or error}" + (f" ({error.filename})" if error.filename else "")
        return f"cannot open the SQLite database {path}: {said}; {_DEFAULT_ADVICE}"
    fault = fault_of(error)
    if fault is None and isinstance(error, BackendError):
        return f"cannot open the SQLite database {path}: {error}"  # says what to do itself
    said = str(error).removeprefix("sqlite: ")
    advice = _ADVICE.get(fault or "", _DEFAULT_ADVICE)
    return f"cannot open the SQLite database {path}: {said}; {advice}"
