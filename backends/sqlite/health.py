"""Readiness of the SQLite store: can it serve writes now? (`batchsvc.storage.ChecksReadiness`)

`ping` (a SELECT) answers on a file no write can reach: read-only, on a full disk, damaged. So
readiness is a real write, a probe: the store rewrites one `settings` row through its group
commit (BEGIN IMMEDIATE ... COMMIT, together with whatever writes wait at that moment, so under
load it rides along in a transaction that was happening anyway). Its answer is kept for
`PROBE_EVERY` seconds, so a `/readyz` polled often costs nothing more.

What else moves the answer:
- A real write that fails with a fault of the file or its disk (read-only, disk full, I/O)
  drops the kept answer, so the next `/readyz` probes at once instead of repeating "ready".
- A damaged file (SQLite's "database disk image is malformed") keeps the store not ready until
  it is restarted: the probe rewrites one page and proves nothing about the damaged ones, and
  damage does not heal; an operator restores the file.
- Free space under `MIN_FREE_BYTES` is "disk_full" whatever the probe says: after a checkpoint
  SQLite writes its WAL file again from the start, so a small write can succeed on a full disk
  while any write that needs a new page fails.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from batchsvc.errors import CorruptBackendError
from batchsvc.storage import Readiness

from .support import fault_of

#: How long a probe's answer is kept, in seconds.
PROBE_EVERY = 1.0
#: A probe that takes longer (writes queue behind a long atomic batch, say) answers "busy".
PROBE_TIMEOUT = 5.0
#: Less free space than this on the file's disk is "disk_full".
MIN_FREE_BYTES = 1 << 20
#: Faults of a real write that say the next write would fail too.
WRITE_FAULTS = frozenset({"disk_full", "read_only", "io_error", "cannot_open"})

ADVICE = {
    "disk_full": "free space on its disk",
    "read_only": "make the file, its folder and its -wal and -shm files writable",
    "io_error": "check the disk and the file system",
    "cannot_open": "check that its folder exists and is writable",
    "busy": "writes are waiting for a long transaction; try again",
}


class Health:
    """What the store knows of its file, and the probe that finds out more."""

    def __init__(
        self,
        path: str,
        probe: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._probe = probe
        self._clock = clock
        self._corrupt: str | None = None
        self._answer: tuple[float, Readiness] | None = None
        self._running: asyncio.Task[Readiness] | None = None

    def saw(self, error: BaseException) -> None:
        """An error one of the store's calls raised: remember what it says about the file."""
        fault = fault_of(error)
        if isinstance(error, CorruptBackendError) or fault == "corrupt":
            if self._corrupt is None:
                self._corrupt = str(error)
        elif fault in WRITE_FAULTS:
            self._answer = None

    async def readiness(self) -> Readiness:
        if self._corrupt is not None:
            return Readiness(
                False,
                "corrupt",
                f"{self._corrupt}; restore the file from a backup and restart the service",
            )
        kept = self._answer
        if kept is not None and self._clock() - kept[0] < PROBE_EVERY:
            return kept[1]
        # Callers arriving while a probe runs share it.
        if self._running is None:
            self._running = asyncio.create_task(self._check())
        try:
            # Shielded: a caller that gives up (its request was cancelled) leaves the probe
            # running for the others, and a write under way is never abandoned.
            return await asyncio.wait_for(asyncio.shield(self._running), PROBE_TIMEOUT)
        except TimeoutError:
            return Readiness(
                False,
                "busy",
                f"a test write to {self.path} waited more than {PROBE_TIMEOUT:g} s; "
                + ADVICE["busy"],
            )

    async def _check(self) -> Readiness:
        try:
            answer = await self._probed()
        finally:
            self._running = None
        self._answer = (self._clock(), answer)
        return answer

    async def _probed(self) -> Readiness:
        try:
            free = shutil.disk_usage(Path(self.path).parent).free
        except OSError as error:
            return Readiness(False, "cannot_open", f"cannot inspect {self.path}'s disk: {error}")
        if free < MIN_FREE_BYTES:
            return Readiness(
                False,
                "disk_full",
                f"the disk of {self.path} has {free} bytes free; " + ADVICE["disk_full"],
            )
        try:
            await self._probe()
        except Exception as error:
            self.saw(error)
            if self._corrupt is not None:
                return await self.readiness()
            reason = fault_of(error) or "unavailable"
            advice = ADVICE.get(reason, "see the service's log")
            message = f"a test write to {self.path} failed: {error}; {advice}"
            return Readiness(False, reason, message)
        return Readiness(True)

    async def close(self) -> None:
        """Let a probe under way finish (the store closes its connections next)."""
        running = self._running
        if running is not None:
            await asyncio.wait({running})
