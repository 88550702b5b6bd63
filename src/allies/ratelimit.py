"""A per-client limit on credentials writes, for the whole service: every worker of every replica.

ALLIES_WRITE_RATE_LIMIT="N/minute" (or /second, /hour) enables it; unset or 0 disables it. The
count lives in PostgreSQL (one statement per write, table `write_rate`), because every replica
shares the database and nothing else; a bucket per process in front of it (`Limiter`) refuses a
client already over the limit on this process without asking the database, so a flood costs the
database at most N statements per client, period and process.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .failures import AlliesError, ConfigError

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

PERIODS = {"second": 1, "minute": 60, "hour": 3600}
MAX_CLIENTS = 10_000  # buckets kept; the fullest (idle) ones are forgotten first


@dataclass(frozen=True)
class Limit:
    requests: int
    seconds: int

    @classmethod
    def parse(cls, text: str | None, source: str) -> Limit | None:
        """`N/second`, `N/minute` or `N/hour`; None for unset, `0` or `off`. `source` names the
        variable in errors."""
        if not text or text.strip() in ("0", "off"):
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour)\s*", text)
        if not match or int(match[1]) < 1:
            raise ConfigError(f"{source} must look like 60/minute, got {text!r}")
        return cls(int(match[1]), PERIODS[match[2]])

    def __str__(self) -> str:
        unit = next(name for name, seconds in PERIODS.items() if seconds == self.seconds)
        return f"{self.requests} per {unit} per client"


class WriteLimited(AlliesError):
    """A client over the write limit: it may retry in `wait` seconds."""

    def __init__(self, limit: Limit, wait: float) -> None:
        super().__init__(f"the limit is {limit}")
        self.limit, self.wait = limit, wait

    @property
    def retry_after(self) -> str:
        """The Retry-After header's value: whole seconds, at least 1."""
        return retry_after(self.wait)


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


# The generic cell rate algorithm (a token bucket stored as one time, `tat`: when the client's
# bucket is full again), on the database's clock, so replicas on different machines agree.
# The row is locked while updated: concurrent writes of one client are counted one after the other.
ACQUIRE = """
INSERT INTO write_rate AS bucket (client, tat, admitted)
VALUES (%(client)s, extract(epoch FROM statement_timestamp()) + %(interval)s, true)
ON CONFLICT (client) DO UPDATE SET
    admitted = greatest(bucket.tat, excluded.tat - %(interval)s) <= excluded.tat - %(interval)s + %(burst)s,
    tat = CASE
        WHEN greatest(bucket.tat, excluded.tat - %(interval)s) <= excluded.tat - %(interval)s + %(burst)s
        THEN greatest(bucket.tat, excluded.tat - %(interval)s) + %(interval)s
        ELSE bucket.tat END
RETURNING admitted, tat - %(burst)s - extract(epoch FROM statement_timestamp())
"""
FORGET_FULL_BUCKETS = "DELETE FROM write_rate WHERE tat < extract(epoch FROM statement_timestamp())"


class SharedLimiter:
    """The service-wide limit: this process's own bucket first, then the database's."""

    def __init__(self, limit: Limit, pool: ConnectionPool, clock=time.monotonic) -> None:
        self.limit, self.pool, self.clock = limit, pool, clock
        self._local = Limiter(limit, clock)
        self._forgotten_at = clock()
        interval = limit.seconds / limit.requests
        self._params = {"interval": interval, "burst": limit.seconds - interval}

    def acquire(self, client: str) -> float:
        """0 when the request may go on, else the seconds to wait before retrying."""
        wait = self._local.acquire(client)
        if wait:
            return wait
        with self.pool.connection() as conn:
            admitted, wait = conn.execute(ACQUIRE, {**self._params, "client": client}).fetchone()
            if self.clock() - self._forgotten_at > self.limit.seconds:
                self._forgotten_at = self.clock()
                conn.execute(FORGET_FULL_BUCKETS)
        return 0.0 if admitted else max(wait, 0.001)

    def check(self, client: str) -> None:
        """Count a write of `client`; raises WriteLimited when it is over the limit."""
        wait = self.acquire(client)
        if wait:
            raise WriteLimited(self.limit, wait)


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
