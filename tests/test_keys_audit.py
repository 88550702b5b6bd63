"""`allies audit`, and key management: generate, status, rotate (resumable, safe under writes)."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import BARNES, TEST_KEYS, YOUNG_WOLF, make_app, stored_credentials

from allies import credentials, db, keys
from allies.cli import main
from allies.crypto import KeyRing, new_key_entry
from allies.web.services import services

NEW_KEY = new_key_entry("new-key")
ROTATED = f"{NEW_KEY},{TEST_KEYS}"  # new key first (active), the old one still decrypts


@pytest.fixture
def run(database_url, tmp_path):
    def invoke(*args: str, keys_env: str = TEST_KEYS, **env: str):
        environment = {
            "DATABASE_URL": database_url,
            "ALLIES_HOME": str(tmp_path / "home"),
            "ALLIES_ENCRYPTION_KEYS": keys_env,
            **env,
        }
        return CliRunner().invoke(main, list(args), env=environment)

    return invoke


def set_many(client, ids: list[str]) -> dict[str, tuple[str, str]]:
    written = {}
    for n, ally in enumerate(ids):
        written[ally] = (f"user{n}", f"pw{n}:{{}}")
        assert (
            client.post(
                f"/allies/{ally}/credentials",
                json=dict(zip(("username", "password"), written[ally], strict=True)),
            ).status_code
            == 200
        )
    return written


def all_ids(conn) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM stores ORDER BY id")]


def test_audit_lists_attempts_filters_and_json(run, client):
    client.post(f"/allies/{BARNES}/credentials", json={"username": "u", "password": "p"})
    client.post(f"/allies/{YOUNG_WOLF}/credentials", json={"username": "u"})
    everything = json.loads(run("audit", "--json").stdout)
    assert [(r["ally_id"], r["outcome"], r["http_status"]) for r in everything] == [
        (BARNES, "success", 200),
        (YOUNG_WOLF, "rejected", 400),
    ]
    failed = json.loads(run("audit", "--failed", "--json").stdout)
    assert [r["detail"] for r in failed] == ["missing field: password"]
    assert json.loads(run("audit", "--ally", BARNES, "--json").stdout)[0]["actor"] == "local"
    assert json.loads(run("audit", "--since", "2999-01-01", "--json").stdout) == []
    human = run("audit").stdout
    assert "missing field: password" in human and BARNES in human
    assert run("audit", "--since", "yesterday").exit_code == 2
    assert run("audit", "--ally", "no\tpe").exit_code == 2


def test_generate_prints_a_usable_key(run):
    result = run("keys", "generate", "--id", "k2")
    assert result.exit_code == 0
    ring = KeyRing.parse(result.stdout, "stdout")
    assert ring.active == "k2" and len(ring.keys["k2"]) == 32
    assert "put this entry first" in result.stderr


def test_rotation_moves_every_credential_to_the_active_key(run, settings, conn):
    app = make_app(settings)
    ids = all_ids(conn)[:40]
    written = set_many(app.test_client(), ids)
    services(app).close()
    status = json.loads(run("keys", "status", "--json", keys_env=ROTATED).stdout)
    assert status == [
        {"key_id": "new-key", "active": True, "configured": True, "credentials": 0, "versions": 0},
        {"key_id": "test-key-1", "active": False, "configured": True, "credentials": 40, "versions": 40},
    ]
    first = run(
        "keys", "rotate", "--batch", "7", "--max-rows", "15", "--json", keys_env=ROTATED
    )  # interrupted
    assert json.loads(first.stdout)["rotated"] == 15
    assert json.loads(first.stdout)["remaining"] == 25 + 40  # and the kept versions, rotated after them
    second = run("keys", "rotate", "--batch", "7", "--json", keys_env=ROTATED)  # resumed
    summary = json.loads(second.stdout)
    assert (summary["rotated"], summary["remaining"], summary["undecryptable"]) == (25, 0, [])
    assert summary["versions_rotated"] == 40
    assert keys.usage(conn) == {"new-key": 40} and keys.version_usage(conn) == {"new-key": 40}
    ring = KeyRing.parse(ROTATED, "test")
    for ally, expected in written.items():
        assert stored_credentials(conn, ring, ally) == expected
    only_new = KeyRing.parse(NEW_KEY, "test")  # the old key can now be removed
    assert stored_credentials(conn, only_new, ids[0]) == written[ids[0]]
    for ally, expected in written.items():  # every kept version too, and its number stayed
        assert credentials.version_plaintext(conn, only_new, ally, 1) == expected
        assert credentials.credentials_status(conn, ally).version == 1
    rotations = conn.execute(
        "SELECT count(*) FROM credential_audit WHERE action = 'credentials.set' AND outcome = 'success'"
    ).fetchone()
    assert rotations == (40,)
    audited = conn.execute(
        "SELECT count(*), min(actor) FROM credential_audit WHERE actor = 'rotation'"
    ).fetchone()
    assert audited == (40, "rotation")
    assert json.loads(run("keys", "rotate", "--json", keys_env=ROTATED).stdout)["rotated"] == 0


def test_rotation_reports_envelopes_it_cannot_open(run, settings, conn):
    app = make_app(settings)
    set_many(app.test_client(), all_ids(conn)[:3])
    services(app).close()
    conn.execute(
        "UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials,ciphertext}', '\"AAAA\"') WHERE id = %s",
        (all_ids(conn)[0],),
    )
    result = run("keys", "rotate", keys_env=ROTATED)
    assert result.exit_code == 1
    assert "1 envelopes cannot be decrypted" in result.stderr and all_ids(conn)[0] in result.stderr
    assert keys.usage(conn) == {"new-key": 2, "test-key-1": 1}


def test_writes_during_rotation_are_never_reverted(settings, conn, monkeypatch):
    """Both ways a write meets a rotation, made to happen on every run (no timing luck): a write to a
    row that a batch has locked waits for the batch and lands on top; writes between batches, on
    rotated and not yet rotated rows, are kept."""
    old_app = make_app(settings)
    ids = all_ids(conn)
    set_many(old_app.test_client(), ids)  # 300 credentials under the old key
    services(old_app).close()
    app = make_app(settings.__class__(**{**settings.__dict__, "keyring": KeyRing.parse(ROTATED, "test")}))
    ring = KeyRing.parse(ROTATED, "test")
    order = iter(random.Random(5).sample(ids, len(ids)))  # allies written between batches
    latest: dict[str, tuple[str, str]] = {}
    statuses: list[int] = []
    lock = threading.Lock()

    def write(ally: str) -> None:
        with lock:
            n = len(statuses) + 1
            statuses.append(0)
        body = {"username": f"w{n}", "password": f"p{n}"}
        status = app.test_client().post(f"/allies/{ally}/credentials", json=body).status_code
        with lock:
            statuses[n - 1] = status
            latest[ally] = (body["username"], body["password"])

    waiting_writers: list[threading.Thread] = []
    reencrypt = keys._reencrypt

    def reencrypt_then_let_a_write_wait(batch_conn, keyring, rows, skip):
        done = reencrypt(batch_conn, keyring, rows, skip)  # updated, not yet committed
        writer = threading.Thread(target=write, args=(rows[0][0],))
        writer.start()
        waiting_writers.append(writer)
        wait_until_a_backend_waits_for_a_lock(conn)
        return done

    monkeypatch.setattr(keys, "_reencrypt", reencrypt_then_let_a_write_wait)
    try:
        with db.connect(settings.database_url, autocommit=True) as rotation_conn:
            result = keys.rotate(
                rotation_conn, ring, batch=10, progress=lambda _: [write(next(order)) for _ in range(3)]
            )
    finally:
        for writer in waiting_writers:
            writer.join(timeout=30)
        services(app).close()
    assert result.failed == [] and len(waiting_writers) >= 10
    assert set(statuses) == {200} and len(statuses) >= 4 * len(waiting_writers)
    assert keys.usage(conn) == {"new-key": 300}
    for ally, expected in latest.items():
        assert stored_credentials(conn, ring, ally) == expected


def wait_until_a_backend_waits_for_a_lock(conn, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    while conn.execute(query).fetchone()[0] == 0:
        assert time.monotonic() < deadline, "the write never waited for the batch's row lock"
        time.sleep(0.005)
