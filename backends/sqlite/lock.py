"""One process per SQLite file: an exclusive `flock` on `<db>.lock`, held while the store is
open.

Why: each process keeps per-tenant search indexes in memory (`indexes`), changed only
by its own commits. A second process on the same file would write rows the first one's indexes
never learn of, so a memory made through one would not be found by words through the other.
SQLite's own locks keep the rows consistent, not our indexes; so the second process is refused
at open. Several processes need a backend whose index lives in one server (Chroma's, say).

Why a separate file, and `flock`: SQLite takes POSIX (`fcntl`) locks on the database file, and
POSIX locks belong to the process: closing *any* descriptor of the file drops all of them, so
we must never open and close the database file ourselves. `flock` locks are separate from
POSIX ones on Linux, but on NFS they are emulated with POSIX locks, which on the database file
would collide with SQLite's. A lock file beside it touches none of SQLite's locks. The kernel
drops a `flock` when its holder dies, even by `kill -9`, so a restart is never refused by a
stale lock; the pid written into the file is only there to name the holder in the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from batchsvc.errors import BackendError


class StoreInUse(BackendError):
    """Another process holds the SQLite file."""


class FileLock:
    """An exclusive lock on `<database>.lock`, taken by `acquire`, dropped by `release`.

    Per process, not per store: stores of one process on one file share the lock (counted),
    since a second `flock` from the same process, on a descriptor of its own, would refuse it.
    One `batchsvc` process opens one store; tests open a second on a file to compare."""

    def __init__(self, database: str) -> None:
        self.path = Path(f"{database}.lock")
        self.database = database
        self._key: tuple[int, int] | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreInUse; an OSError if the lock file cannot be made."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            info = os.fstat(fd)
            key = (info.st_dev, info.st_ino)
            held = _HELD.get(key)
            if held is not None:  # this process holds it already
                os.close(fd)
                _HELD[key] = (held[0], held[1] + 1)
                self._key = key
                return
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise StoreInUse(
                f"the SQLite database {self.database} is in use: another batchsvc process"
                f"{who} holds it (lock file {self.path}). One process serves one SQLite file, "
                "because each keeps the file's search indexes in its memory; stop the other "
                "process first (`batchsvc reembed` too needs the service stopped), or give "
                "this one another [storage.options] path"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Only a label for the message above: the lock itself is the kernel's.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = (fd, 1)
        self._key = key

    def release(self) -> None:
        # The file stays: removing it races, as a process that had just opened the old file
        # could lock it while another creates and locks a new one.
        key, self._key = self._key, None
        if key is None:
            return
        fd, count = _HELD[key]
        if count > 1:
            _HELD[key] = (fd, count - 1)
            return
        del _HELD[key]
        os.close(fd)  # drops the flock


#: The lock files this process holds, by (device, inode): the descriptor, and how many stores.
_HELD: dict[tuple[int, int], tuple[int, int]] = {}


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
