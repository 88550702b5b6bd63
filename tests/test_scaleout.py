"""Scale-out with real parts: nginx (Debian's package, docker/nginx.conf) in front of 3 `allies serve`
replicas on one PostgreSQL. One replica is killed (SIGKILL, its whole process group, as a lost
container) under load and started again; a replica with a foreign key ring is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT, TEST_KEYS, allies_env, kept_port, make_app, stored_credentials
from helpers.http import wait_for_http
from helpers.load import CLIENTS, MARKS, NEW_RING, Client, Load, ending

from allies import keys
from allies.crypto import KeyRing, new_key_entry
from allies.web.services import services

sys.path.insert(0, str(ROOT / "bench"))
import stack  # noqa: E402 - bench/stack.py runs nginx for the benchmarks and for this test

pytestmark = MARKS  # slow, served, and a pool-closing warning filter

REPLICAS = 3
ALLIES = 60
READERS = 4


@pytest.fixture(autouse=True)
def need_nginx():
    if stack.nginx() is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the scale-out tests: {stack.INSTALL_NGINX}")
        pytest.skip(stack.INSTALL_NGINX)


class Replica:
    """One `allies serve` with a home of its own (as a container without a shared volume), the key
    ring from the one secret, trusting one proxy (nginx) for the client address."""

    def __init__(self, folder: Path, database_url: str, **env: str) -> None:
        self.port, self.folder = kept_port(), folder  # the same port again after a kill
        self.log = folder / "server.log"
        self.env = {
            "DATABASE_URL": database_url,
            "ALLIES_HOME": str(folder / "home"),
            "ALLIES_ENCRYPTION_KEYS": TEST_KEYS,
            "ALLIES_LOG_FILE": str(self.log),
            "ALLIES_TRUSTED_PROXIES": "1",
            **env,
        }
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> subprocess.Popen:
        output = open(self.folder / "serve.out", "ab")  # noqa: SIM115 - the child holds it
        command = ["allies", "serve", "--port", str(self.port), "--workers", "1", "--threads", "4"]
        self.process = subprocess.Popen(
            command,
            env=allies_env(**self.env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        if wait:
            try:
                wait_for_http(f"{self.base}/health", process=self.process)
            except RuntimeError as exc:  # say why: the end of what it printed
                raise RuntimeError(f"{exc}; its output ends: {self.output()[-600:]}") from None
        return self.process

    def output(self) -> str:
        return (self.folder / "serve.out").read_text()

    def kill(self) -> None:
        """SIGKILL to the master and its workers at once, like a machine or container lost."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        subprocess.run(["pkill", "-KILL", "-s", str(self.process.pid)], check=False)  # any straggler

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def answered_writes(self) -> list[str]:
        """The ally of each write this replica answered, in order (its access log: POST ... 200)."""
        return [
            line.split('"POST /allies/', 1)[1].split("/", 1)[0]
            for line in self.log.read_text().splitlines()
            if '"POST /allies/' in line and '" 200 ' in line
        ]


@pytest.fixture
def replicas(tmp_path, database_url):
    started = [Replica(tmp_path / f"replica-{n}", database_url) for n in range(REPLICAS)]
    for replica in started:
        replica.start()
    yield started
    for replica in started:
        replica.stop()


@pytest.fixture
def balancer(tmp_path, replicas):
    with stack.balancer([replica.port for replica in replicas], tmp_path / "nginx") as base:
        yield base


class Readers:
    """Threads reading credentials statuses through the balancer until stopped, each answer timed."""

    def __init__(self, base: str, allies: list[str]) -> None:
        self.base, self.allies = base, allies
        self.statuses: Counter = Counter()
        self.failures: list[float] = []  # when a read was not answered 200 (time.monotonic)
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.threads = [threading.Thread(target=self._read, args=(n,)) for n in range(READERS)]

    def _read(self, number: int) -> None:
        rng, client = random.Random(number), Client(self.base)
        while not self.stop.is_set():
            status = client.get(rng.choice(self.allies))
            with self.lock:
                self.statuses[status] += 1
                if status not in (200, 400):
                    self.failures.append(time.monotonic())
        client.close()

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def test_a_replica_killed_under_load_loses_no_acknowledged_write(tmp_path, database_url, replicas, balancer):
    with psycopg.connect(database_url) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM stores ORDER BY id LIMIT %s", (ALLIES,))]
        before = {
            ally: conn.execute("SELECT data->'credentials' FROM stores WHERE id = %s", (ally,)).fetchone()[0]
            for ally in ids
        }
    over = threading.Event()
    load = Load(balancer, ids, 1_000, until=over)
    victim, timings = replicas[0], {}

    @ending(over)
    def kill_and_restart():
        load.wait_for(lambda ld: ld.statuses[200] >= 300, "300 writes before the kill")
        timings["killed"] = time.monotonic()
        victim.kill()
        answered = load.statuses[200]
        load.wait_for(lambda ld: ld.statuses[200] >= answered + 300, "300 writes while a replica is down")
        victim.start()
        timings["back"] = time.monotonic()
        served = len(victim.answered_writes())  # writes, not allies: it may have written every ally already
        load.wait_for(
            lambda _: len(victim.answered_writes()) > served, "a write served by the restarted replica"
        )

    with Readers(balancer, ids) as readers:
        helper = threading.Thread(target=kill_and_restart)
        helper.start()
        load.run()
        helper.join(timeout=120)
    assert kill_and_restart.errors == []

    # Reads were answered (200: set, 400: not set yet): nginx retried on another replica every read
    # the dying replica had not begun to answer. The only read it cannot save is one whose answer
    # was cut between its header and its body (0, no answer): at most one per reader, at the kill.
    assert readers.statuses[200] > 0 and set(readers.statuses) <= {200, 400, 0}, readers.statuses
    assert readers.statuses[0] <= READERS and all(at >= timings["killed"] for at in readers.failures)
    # Writes: answered 200; else sent to the replica as it died, never retried by nginx and never
    # acknowledged: 503 (nginx's JSON answer) or, if the answer was cut midway, none (0).
    assert set(load.statuses) <= {200, 503, 0}, load.statuses
    # Only writes in flight at the kill (one per client at most) went unanswered.
    unanswered = load.attempts - load.statuses[200]
    assert unanswered <= CLIENTS and all(at >= timings["killed"] for at in load.failures), load.statuses

    ring = KeyRing.parse(TEST_KEYS, "test")
    with psycopg.connect(database_url) as conn:
        assert load.versions_missing(conn) == []  # a version each, whatever replica wrote it or died
        for ally in ids:  # every acknowledged write is there, and decrypts with the shared ring
            if ally in load.acknowledged:
                assert stored_credentials(conn, ring, ally) in load.possible_values(ally, None)
            else:
                assert (
                    conn.execute("SELECT data->'credentials' FROM stores WHERE id = %s", (ally,)).fetchone()[
                        0
                    ]
                    == before[ally]
                )
        audited = conn.execute(
            "SELECT count(*) FROM credential_audit WHERE action = 'credentials.set' AND outcome = 'success'"
        ).fetchone()[0]
        clients = {row[0] for row in conn.execute("SELECT DISTINCT client_addr FROM credential_audit")}
    # One audit row per answered write, plus at most the few committed by the killed replica unanswered.
    assert load.statuses[200] <= audited <= load.statuses[200] + unanswered
    assert clients == {"127.0.0.1"}  # the client's address (from nginx's X-Forwarded-For), not a replica's

    # Every replica reads what the others wrote: asked directly, each says the credentials are set.
    written_by = [replica.answered_writes() for replica in replicas]
    assert all(written_by), "every replica served writes"
    for number, replica in enumerate(replicas):
        client = Client(replica.base)
        others = set().union(*(w for n, w in enumerate(written_by) if n != number))
        assert {ally: client.get(ally) for ally in others} == dict.fromkeys(others, 200)
        client.close()
        status = subprocess.run(
            ["allies", "keys", "status", "--json"],
            env=allies_env(**replica.env),
            capture_output=True,
            text=True,
        )
        assert status.returncode == 0, status.stderr
        assert all(key["configured"] for key in json.loads(status.stdout)), status.stdout

    down = timings["back"] - timings["killed"]
    window = max(load.failures, default=timings["killed"]) - timings["killed"]
    failed_writes = (
        f"{unanswered} writes unanswered ({load.statuses[503]} 503 from nginx, {load.statuses[0]} cut), "
        f"all within {window:.2f} s of the kill"
    )
    (tmp_path / "figures.txt").write_text(
        f"scale-out: {load.attempts} writes, {load.statuses[200]} acknowledged, all found; "
        f"{sum(readers.statuses.values())} reads, {readers.statuses[0]} cut; replica down {down:.1f} s; {failed_writes}\n"
    )
    print((tmp_path / "figures.txt").read_text())


def test_a_replica_with_a_foreign_key_ring_is_refused(tmp_path, database_url, replicas):
    foreign = Replica(tmp_path / "foreign", database_url, ALLIES_ENCRYPTION_KEYS=new_key_entry("test-key-1"))
    process = foreign.start(wait=False)
    assert process.wait(timeout=60) == 1
    assert (
        "key id test-key-1 of this instance is not the key the database knows as test-key-1"
        in foreign.output()
    )
    keyless = Replica(tmp_path / "keyless", database_url, ALLIES_ENCRYPTION_KEYS="")
    assert keyless.start(wait=False).wait(timeout=60) == 1
    assert "this home has no key file, and the database already knows key(s) test-key-1" in keyless.output()
    assert not (tmp_path / "keyless" / "home" / "encryption.keys").exists()


def test_the_write_limit_counts_a_client_across_replicas_behind_nginx(tmp_path, database_url):
    limited = [
        Replica(tmp_path / f"limited-{n}", database_url, ALLIES_WRITE_RATE_LIMIT="4/minute") for n in range(3)
    ]
    for replica in limited:
        replica.start()
    try:
        with stack.balancer([replica.port for replica in limited], tmp_path / "nginx") as base:
            client = Client(base)
            forged = {"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"}
            body = json.dumps({"username": "u", "password": "p"})
            ally = psycopg.connect(database_url).execute("SELECT id FROM stores LIMIT 1").fetchone()[0]
            statuses = [client.request("POST", ally, body, forged) for _ in range(9)]
            client.close()
    finally:
        for replica in limited:
            replica.stop()
    assert statuses == [200] * 4 + [429] * 5  # round-robin over 3 replicas, one count for the service
    served = [sum('"POST /allies/' in line for line in r.log.read_text().splitlines()) for r in limited]
    assert all(served), served  # every replica took some of them


def test_a_rotation_goes_on_while_every_replica_takes_writes(tmp_path, database_url, settings):
    """Step 3 of the documented rotation (every ring has the new key first): the credentials under the
    old key are re-encrypted while writes keep landing on every replica; none is reverted."""
    with psycopg.connect(database_url) as conn:
        # Every store: far more allies than writers, so most are still under the old key when the
        # rotation starts, whatever the load's speed.
        ids = [row[0] for row in conn.execute("SELECT id FROM stores ORDER BY id")]
    old = make_app(settings).test_client()  # credentials under the old key (TEST_KEYS) before the rotation
    assert {
        old.post(f"/allies/{ally}/credentials", json={"username": "b", "password": "b"}).status_code
        for ally in ids
    } == {200}
    services(old.application).close()
    ring = KeyRing.parse(NEW_RING, "test")
    replicas = [
        Replica(tmp_path / f"rotated-{n}", database_url, ALLIES_ENCRYPTION_KEYS=NEW_RING) for n in range(3)
    ]
    for replica in replicas:
        replica.start()
    try:
        with stack.balancer([replica.port for replica in replicas], tmp_path / "nginx") as base:
            over = threading.Event()
            load = Load(base, ids, 600, until=over)

            @ending(over)
            def rotate_during_the_load():
                load.wait_for(lambda ld: ld.statuses[200] >= 20, "20 writes before the rotation")
                # What `allies keys rotate` runs, in this process: the CLI would start only after the
                # load had rewritten every ally under the new key, leaving nothing to rotate.
                with psycopg.connect(database_url, autocommit=True) as conn:
                    conn.execute("SET lock_timeout = '20s'")
                    assert keys.rotate(conn, ring, batch=5).rotated > 0
                answered = load.statuses[200]
                load.wait_for(lambda ld: ld.statuses[200] >= answered + 100, "100 writes after the rotation")

            helper = threading.Thread(target=rotate_during_the_load)
            helper.start()
            load.run()
            helper.join(timeout=120)
    finally:
        for replica in replicas:
            replica.stop()
    assert rotate_during_the_load.errors == []
    assert set(load.statuses) == {200}, load.statuses
    with psycopg.connect(database_url) as conn:
        assert keys.usage(conn) == {"load-new": len(ids)}
        for ally in ids:
            assert stored_credentials(conn, ring, ally) == load.acknowledged.get(ally, ("b", "b"))
