"""A per-client limit on credentials writes: a token bucket per client address, per worker process.

ALLIES_WRITE_RATE_LIMIT="N/minute" (or /second, /hour) enables it; unset or 0 disables it. Each
gunicorn worker keeps its own buckets, so a client may get up to N x workers in the worst case.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass

from .config import ConfigError

PERIODS = {"second": 1, "minute": 60, "hour": 3600}
MAX_CLIENTS = 10_000  # buckets kept; the fullest (idle) ones are forgotten first


@dataclass(frozen=True)
class Limit:
    requests: int
    seconds: int

    @classmethod
    def parse(cls, text: str | None) -> Limit | None:
        if not text or text.strip() in ("0", "off"):
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour)\s*", text)
        if not match or int(match[1]) < 1:
            raise ConfigError(f"ALLIES_WRITE_RATE_LIMIT must look like 60/minute, got {text!r}")
        return cls(int(match[1]), PERIODS[match[2]])

    def __str__(self) -> str:
        unit = next(name for name, seconds in PERIODS.items() if seconds == self.seconds)
        return f"{self.requests} per {unit} per client"


class Limiter:
    def __init__(self, limit: Limit, clock=time.monotonic) -> None:
        self.limit, self.clock = limit, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last update)
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """0 when the request may go on, else the seconds to wait before retrying."""
        rate = self.limit.requests / self.limit.seconds
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(client, (float(self.limit.requests), now))
            tokens = min(float(self.limit.requests), tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                self._forget_idle()
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / rate

    def _forget_idle(self) -> None:
        if len(self._buckets) > MAX_CLIENTS:
            for client, _ in sorted(self._buckets.items(), key=lambda item: -item[1][0])[: MAX_CLIENTS // 10]:
                del self._buckets[client]


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class Sampler:
    """Lets through up to `limit` events per client and period, and counts the others per client
    (for the audit of refusals: a flood leaves a bounded number of rows, and a count)."""

    def __init__(self, limit: Limit, clock=time.monotonic) -> None:
        self._limiter = Limiter(limit, clock)
        self._skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, client: str) -> int | None:
        """None when this event is not to be recorded, else how many were skipped before it."""
        admitted = not self._limiter.acquire(client)
        with self._lock:
            if admitted:
                return self._skipped.pop(client, 0)
            self._skipped[client] = self._skipped.get(client, 0) + 1
            if len(self._skipped) > MAX_CLIENTS:
                del self._skipped[next(iter(self._skipped))]  # the longest-counting client's tally
            return None
