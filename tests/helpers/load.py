"""The load generator of the load and scale-out tests: keep-alive clients writing credentials,
one writer per ally at a time, so every acknowledged write is known and can be checked after faults."""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
from conftest import TEST_KEYS

from allies.crypto import new_key_entry

# A pool connection still being opened in the background when its pool closes is dropped unclosed;
# that warning says nothing about what these tests prove.
MARKS = [
    pytest.mark.slow,
    pytest.mark.served,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

CLIENTS = 64
WRITES = 5_000
ALLIES = 50
NEW_RING = f"{new_key_entry('load-new')},{TEST_KEYS}"


class Client:
    """One keep-alive HTTP connection, reopened after a failure."""

    def __init__(self, base: str) -> None:
        self.host, self.port = urlsplit(base).hostname, urlsplit(base).port
        self.conn: http.client.HTTPConnection | None = None
        self.request_id: str | None = None  # the X-Request-Id of the latest answer

    def post(self, ally: str, body: dict) -> int:
        return self.request("POST", ally, json.dumps(body), {"Content-Type": "application/json"})

    def get(self, ally: str) -> int:
        return self.request("GET", ally)

    def request(self, method: str, ally: str, body: str | None = None, headers: dict | None = None) -> int:
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
            self.conn.request(method, f"/allies/{ally}/credentials", body, headers or {})
            response = self.conn.getresponse()
            response.read()
            self.request_id = response.getheader("X-Request-Id")
            return response.status
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return 0  # no answer: not acknowledged

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Load:
    """CLIENTS threads writing credentials; each ally has one writer at a time, so its last
    acknowledged write is well defined. The load makes at least `writes` writes, and goes on
    until `until` is set: the faults it must meet happen while it runs, whatever the speed."""

    def __init__(self, base: str, allies: list[str], writes: int, until: threading.Event) -> None:
        self.base, self.remaining, self.lock = base, writes, threading.Lock()
        self.until = until
        self.free = list(allies)
        self.acknowledged: dict[str, tuple[str, str]] = {}
        self.acknowledged_requests: list[str] = []  # the request id of every 200: each is a version
        # An ally's writes after its last acknowledged one, unanswered: a server killed after its
        # commit and before its answer may have stored them, never anything else.
        self.unanswered: dict[str, list[tuple[str, str]]] = {}
        self.statuses: Counter = Counter()
        self.successes: list[float] = []  # when each 200 arrived (time.monotonic)
        self.failures: list[float] = []  # when each other answer (or none) arrived
        self.attempts = 0

    def _take(self, rng: random.Random) -> str | None:
        while True:
            with self.lock:
                if self.remaining <= 0 and self.until.is_set():
                    return None
                if self.free:
                    self.remaining -= 1
                    self.attempts += 1
                    return self.free.pop(rng.randrange(len(self.free)))
            time.sleep(0.001)

    def _client(self, number: int) -> None:
        rng, client, n = random.Random(number), Client(self.base), 0
        while (ally := self._take(rng)) is not None:
            n += 1
            body = {"username": f"c{number}-{n}", "password": f"}}p:{number}:{n}{{"}
            status = client.post(ally, body)
            with self.lock:
                self.statuses[status] += 1
                written = (body["username"], body["password"])
                if status == 200:
                    self.acknowledged[ally] = written
                    self.acknowledged_requests.append(client.request_id)
                    self.unanswered.pop(ally, None)
                    self.successes.append(time.monotonic())
                else:
                    self.unanswered.setdefault(ally, []).append(written)
                    self.failures.append(time.monotonic())
                self.free.append(ally)
        client.close()

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)

    def possible_values(self, ally: str, before: tuple[str, str]) -> list[tuple[str, str]]:
        """What the database may hold for `ally` now: its last acknowledged write (or `before`),
        or one of the unanswered writes after it."""
        return [self.acknowledged.get(ally, before), *self.unanswered.get(ally, [])]

    def versions_missing(self, conn) -> list[str]:
        """The acknowledged writes that are not a credentials version (none, when nothing is lost),
        and the allies whose versions are not numbered 1, 2, 3... without a gap."""
        versioned = {row[0] for row in conn.execute("SELECT request_id FROM credential_versions")}
        gaps = conn.execute(
            "SELECT ally_id FROM credential_versions GROUP BY ally_id HAVING max(version) <> count(*)"
        ).fetchall()
        return [rid for rid in self.acknowledged_requests if rid not in versioned] + [row[0] for row in gaps]

    def wait_for(self, condition, what: str, timeout: float = 60.0) -> None:
        """Wait (bounded) until `condition(self)` holds, under the lock."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if condition(self):
                    return
            assert time.monotonic() < deadline, f"the load never reached: {what}"
            time.sleep(0.01)


def ending(event: threading.Event):
    """A fault-injecting helper that sets `event` when it ends, however it ends, so the load it
    holds open always stops; its failure is kept in `.errors` for the test to report."""

    def decorate(function):
        def run():
            try:
                function()
            except BaseException as exc:
                run.errors.append(exc)
            finally:
                event.set()

        run.errors = []
        return run

    return decorate


def worker_pids(server_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(server_pid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]
