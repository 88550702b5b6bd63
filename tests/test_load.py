"""Proof under load and faults, on the real server (granian) and a real PostgreSQL:
64 concurrent clients, 5,000+ credentials writes over 50 allies, store updates and a key rotation
at the same time, a worker killed mid-load, and a database outage in the middle of the load."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import psycopg
import pytest
from conftest import TEST_KEYS, make_app, stored_credentials
from helpers.load import ALLIES, CLIENTS, MARKS, NEW_RING, WRITES, Load, ending, worker_pids

from allies import db, keys, stores
from allies.crypto import KeyRing
from allies.web.services import services

pytestmark = MARKS  # slow, served, and a pool-closing warning filter


@pytest.fixture
def loaded_server(database_url, settings, serve):
    """50 allies with credentials under the old key; the server (2 workers) has the new key first."""
    old_app = make_app(settings)
    ids = [
        row[0] for row in psycopg.connect(database_url).execute("SELECT id FROM stores ORDER BY id LIMIT 50")
    ]
    client = old_app.test_client()
    for ally in ids:
        client.post(f"/allies/{ally}/credentials", json={"username": "before", "password": "before"})
    services(old_app).close()
    base = serve(workers=2, ALLIES_ENCRYPTION_KEYS=NEW_RING)
    return base, ids, serve.processes[base]


def test_concurrent_writes_updates_rotation_and_a_killed_worker_lose_nothing(loaded_server, database_url):
    base, ids, server = loaded_server
    ring = KeyRing.parse(NEW_RING, "test")
    killed = threading.Event()
    load = Load(base, ids, WRITES, until=killed)
    names: dict[str, str] = {}
    stop = threading.Event()

    def updater():  # case-2 style updates of the same rows, through the library
        rng, n = random.Random(9), 0
        with db.connect(database_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")  # fail loudly rather than hang
            while not stop.is_set():
                ally, n = rng.choice(ids), n + 1
                stores.apply_change(conn, ally, stores.Change(name=f"name-{n}"), reason="load test")
                names[ally] = f"name-{n}"

    def rotation():
        with db.connect(database_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            keys.rotate(conn, ring, batch=5)

    @ending(killed)
    def kill_a_worker():  # mid-load, then the load goes on until the replacement has served
        load.wait_for(lambda ld: ld.statuses[200] >= 500, "500 writes before the kill")
        os.kill(worker_pids(server.pid)[0], signal.SIGKILL)  # granian starts a new one
        served = load.statuses[200]
        load.wait_for(lambda ld: ld.statuses[200] >= served + 500, "500 writes after the kill")

    helpers = [threading.Thread(target=f) for f in (updater, rotation, kill_a_worker)]
    for thread in helpers:
        thread.start()
    load.run()
    stop.set()
    for thread in helpers:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in helpers), "a helper (updates, rotation) is stuck"
    assert kill_a_worker.errors == []

    assert load.attempts >= WRITES and load.statuses[200] >= load.attempts * 0.9, load.statuses
    assert set(load.statuses) <= {200, 0}, load.statuses  # 0: cut by the killed worker, never a 500
    with psycopg.connect(database_url) as conn:
        assert keys.usage(conn) == {"load-new": ALLIES}
        assert load.versions_missing(conn) == []  # every acknowledged write is a version, numbers gapless
        for ally in ids:  # the last acknowledged write of every ally, decrypted
            assert stored_credentials(conn, ring, ally) in load.possible_values(ally, ("before", "before"))
            assert stores.get_store(conn, ally)["name"] == names.get(
                ally, stores.get_store(conn, ally)["name"]
            )
        audited = conn.execute(
            "SELECT count(*) FROM credential_audit WHERE action = 'credentials.set' AND actor = 'local'"
        ).fetchone()[0]
    # One row per attempt that reached the database: the answered ones, plus at most the few the
    # killed worker committed without answering (never more).
    answered = load.statuses[200] + ALLIES  # + the 50 writes made before the load
    assert answered <= audited <= answered + load.statuses[0]
    print(
        f"load: {load.attempts} writes over {ALLIES} allies from {CLIENTS} clients, {dict(load.statuses)}, lost 0"
    )


def test_database_outage_under_load_gives_503_then_recovers(own_server, serve):
    server = own_server
    with psycopg.connect(server.url) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM stores LIMIT 50")]
    base = serve(workers=2, DATABASE_URL=server.url)
    over = threading.Event()
    load = Load(base, ids, 1_000, until=over)
    timings: dict[str, float] = {}

    @ending(over)
    def outage():  # while the load runs: stop, until the clients have seen 503s; then back
        load.wait_for(lambda ld: ld.statuses[200] >= 200, "200 writes before the outage")
        server.stop()
        try:
            load.wait_for(lambda ld: ld.statuses[503] >= 20, "20 answers 503 during the outage")
        finally:
            server.start()
        timings["back"] = time.monotonic()
        load.wait_for(lambda ld: ld.successes[-1] >= timings["back"], "a write after the outage")

    thread = threading.Thread(target=outage)
    thread.start()
    started = time.monotonic()
    load.run()
    thread.join()
    assert outage.errors == []
    assert time.monotonic() - started < 120  # bounded: no hang
    assert load.statuses[503] > 0 and set(load.statuses) <= {200, 503}, load.statuses  # never a 500
    recovery = min(t for t in load.successes if t >= timings["back"]) - timings["back"]
    assert recovery < 5, recovery
    with psycopg.connect(server.url) as conn:
        ring = KeyRing.parse(TEST_KEYS, "test")
        for ally in ids:  # no partial write: every stored envelope opens to an acknowledged write
            if ally in load.acknowledged:
                assert stored_credentials(conn, ring, ally) == load.acknowledged[ally]
        assert load.versions_missing(conn) == []
    print(f"outage: {dict(load.statuses)}, served again {recovery:.2f} s after the database came back")
