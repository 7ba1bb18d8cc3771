"""Rate limiting per API key, behind a small interface so several processes can later share
counters (Redis) without touching handlers.

Fixed windows: a key's window opens with its first request and lasts `window` seconds. The
state maps directly onto the IETF RateLimit fields: `q` (quota), `r` (remaining), `t`
(seconds until the window resets).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from attrs import define, frozen


@frozen
class Policy:
    name: str
    quota: int
    window_seconds: int

    def header(self) -> str:
        """The `RateLimit-Policy` field value."""
        return f'"{self.name}";q={self.quota};w={self.window_seconds}'


@frozen
class Decision:
    policy: Policy
    allowed: bool
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": self.policy.header(),
            "RateLimit": f'"{self.policy.name}";r={self.remaining};t={self.reset_seconds}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter(Protocol):
    def hit(self, key: str, policy: Policy) -> Decision:
        """Count one request of `key` under `policy` and say whether it may go on."""


@define
class _Window:
    opened: float
    count: int


class InProcessRateLimiter:
    """Counters in a dict; fine for one process. Expired windows are dropped as they are met."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def hit(self, key: str, policy: Policy) -> Decision:
        now = self._clock()
        slot = (policy.name, key)
        window = self._windows.get(slot)
        if window is None or now - window.opened >= policy.window_seconds:
            if len(self._windows) > 100_000:
                self._sweep(now, policy.window_seconds)
            window = self._windows[slot] = _Window(now, 0)
        reset = max(1, math.ceil(window.opened + policy.window_seconds - now))
        if window.count >= policy.quota:
            return Decision(policy, False, 0, reset)
        window.count += 1
        return Decision(policy, True, policy.quota - window.count, reset)

    def _sweep(self, now: float, window_seconds: int) -> None:
        expired = [s for s, w in self._windows.items() if now - w.opened >= window_seconds]
        for slot in expired:
            del self._windows[slot]
