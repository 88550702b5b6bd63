"""Credentials that are never lost: every write a version, conditional writes (If-Match,
If-None-Match, ALLIES_REQUIRE_IF_MATCH), idempotent retries (Idempotency-Key), retention, history
and restore, through the real Flask app and a real PostgreSQL; the concurrent proofs against the
real server."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import BARNES, TOKENS, YOUNG_WOLF, allies_env, make_app, stored_credentials
from helpers.http import send

from allies import credentials
from allies.web.services import services

ENDPOINT = f"/allies/{BARNES}/credentials"


def post(client, body=None, n: int = 1, **headers):
    return client.post(
        ENDPOINT, json=body or {"username": f"user{n}", "password": f"pass{n}"}, headers=headers
    )


def versions_of(conn, ally: str = BARNES) -> list[tuple]:
    return conn.execute(
        "SELECT version, envelope IS NULL, restored_from FROM credential_versions WHERE ally_id = %s"
        " ORDER BY version",
        (ally,),
    ).fetchall()


def audited(conn) -> list[tuple]:
    return conn.execute(
        "SELECT action, outcome, http_status, detail FROM credential_audit ORDER BY id"
    ).fetchall()


@pytest.fixture
def app_with(settings):
    """Factory: the app under changed settings."""
    made = []

    def build(**changes):
        made.append(make_app(replace(settings, **changes)))
        return made[-1].test_client()

    yield build
    for app in made:
        services(app).close()


def test_every_write_is_the_next_version_and_answers_carry_its_etag(client, conn, keyring):
    assert "ETag" not in client.get(ENDPOINT).headers  # no credentials: no version
    for n in (1, 2, 3):
        answer = post(client, n=n)
        assert answer.status_code == 200 and answer.headers["ETag"] == f'"{n}"'
        assert answer.get_json() == {
            "message": "Credentials added",
            "allyId": BARNES,
            "allyName": "Barnes Inc",
        }
    assert client.get(ENDPOINT).headers["ETag"] == '"3"'
    assert versions_of(conn) == [(1, False, None), (2, False, None), (3, False, None)]
    for n in (1, 2, 3):
        assert credentials.version_plaintext(conn, keyring, BARNES, n) == (f"user{n}", f"pass{n}")
    assert stored_credentials(conn, keyring, BARNES) == ("user3", "pass3")


def test_the_history_names_every_version_and_holds_no_secret(client, conn):
    post(client, n=1)
    post(client, {"username": "secret-user", "password": "secret-pass"})
    answer = client.get(f"{ENDPOINT}/versions")
    assert answer.status_code == 200 and answer.headers["ETag"] == '"2"'
    body = answer.get_json()
    assert body["allyId"] == BARNES and body["current"] == 2
    assert [(row["version"], row["current"], row["destroyed"], row["actor"]) for row in body["versions"]] == [
        (2, True, False, "local"),
        (1, False, False, "local"),
    ]
    assert all(row["keyId"] == "test-key-1" and len(row["requestId"]) == 32 for row in body["versions"])
    assert "secret" not in answer.get_data(as_text=True)
    assert client.get("/allies/00000000-0000-4000-8000-000000000000/credentials/versions").status_code == 404
    assert client.get(f"/allies/{YOUNG_WOLF}/credentials/versions").get_json()["versions"] == []


def test_if_match_writes_only_over_the_version_it_names(client, conn, keyring):
    post(client, n=1)
    assert post(client, n=2, **{"If-Match": '"1"'}).headers["ETag"] == '"2"'
    stale = post(client, n=3, **{"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.headers["ETag"] == '"2"'
    assert stale.get_json() == {
        "message": "The credentials changed since you read them",
        "detail": "current version is 2",
    }
    assert post(client, n=4, **{"If-Match": '"7", "2"'}).status_code == 200  # a list: any of them
    assert post(client, n=5, **{"If-Match": "*"}).status_code == 200  # any current version
    assert stored_credentials(conn, keyring, BARNES) == ("user5", "pass5")
    assert [row[0] for row in versions_of(conn)] == [1, 2, 3, 4]
    assert audited(conn)[2] == ("credentials.set", "conflict", 412, "current version is 2")


def test_if_none_match_star_writes_only_an_ally_without_credentials(client, conn):
    assert post(client, n=1, **{"If-None-Match": "*"}).status_code == 200
    again = post(client, n=2, **{"If-None-Match": "*"})
    assert again.status_code == 412 and again.get_json()["detail"] == "current version is 1"
    none_yet = client.post(
        f"/allies/{YOUNG_WOLF}/credentials",
        json={"username": "u", "password": "p"},
        headers={"If-Match": '"1"'},
    )
    assert none_yet.status_code == 412 and "ETag" not in none_yet.headers
    assert none_yet.get_json()["detail"] == "current version is none: the ally has no credentials"
    assert [row[0] for row in versions_of(conn)] == [1] and versions_of(conn, YOUNG_WOLF) == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("If-Match", "1"),  # not quoted
        ("If-Match", 'W/"1"'),  # weak: never for a write
        ("If-Match", '"0"'),
        ("If-Match", '"1",'),
        ("If-Match", '"x"'),
        ("If-None-Match", ""),
        ("If-None-Match", '"99999999999"'),
        ("Idempotency-Key", ""),
        ("Idempotency-Key", "k" * 129),
        ("Idempotency-Key", "caf\u00e9"),
        ("Idempotency-Key", " padded"),
    ],
)
def test_a_malformed_precondition_or_key_is_a_precise_400_that_changes_nothing(client, conn, header, value):
    post(client, n=1)
    answer = post(client, n=2, **{header: value})
    assert answer.status_code == 400
    assert answer.get_json()["detail"].startswith(f"malformed {header}")
    assert [row[0] for row in versions_of(conn)] == [1]
    assert audited(conn)[-1][:3] == ("credentials.set", "rejected", 400)


def test_a_required_precondition_is_a_428_without_one(app_with, conn):
    client = app_with(require_if_match=True)
    refused = post(client, n=1)
    assert refused.status_code == 428 and refused.get_json()["message"] == "Precondition required"
    assert "If-Match" in refused.get_json()["detail"]
    assert post(client, n=1, **{"If-None-Match": "*"}).status_code == 200
    assert post(client, n=2, **{"If-Match": '"1"'}).status_code == 200
    assert [row[0] for row in versions_of(conn)] == [1, 2]
    assert audited(conn)[0][:3] == ("credentials.set", "rejected", 428)


def test_an_idempotent_retry_returns_the_first_answer_and_writes_nothing_new(client, conn):
    first = post(client, n=1, **{"Idempotency-Key": "ticket-42 try"})
    retry = post(client, n=1, **{"Idempotency-Key": "ticket-42 try"})
    assert retry.status_code == 200 and retry.get_json() == first.get_json()
    assert retry.headers["ETag"] == first.headers["ETag"] == '"1"'
    assert retry.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    other = post(client, n=2, **{"Idempotency-Key": "ticket-42 try"})
    assert other.status_code == 422 and "different request" in other.get_json()["detail"]
    assert [row[0] for row in versions_of(conn)] == [1]
    stored = conn.execute("SELECT fingerprint, response::text FROM idempotency_keys").fetchall()
    assert len(stored) == 1 and "pass1" not in str(stored) and "user1" not in str(stored)


def test_idempotency_keys_are_per_actor_and_expire(app_with, conn):
    client = app_with(api_tokens=TOKENS)
    ana, luis = (
        {"Authorization": f"Bearer {TOKENS[name]}", "Idempotency-Key": "k1"} for name in ("ana", "luis")
    )
    assert post(client, n=1, **ana).headers["ETag"] == '"1"'
    assert post(client, n=1, **luis).headers["ETag"] == '"2"'  # another person's key is another key
    conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    assert post(client, n=1, **ana).headers["ETag"] == '"3"'  # expired: a new request
    conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE actor = 'luis'")
    assert credentials.forget_expired_idempotency_keys(conn) == 1
    assert conn.execute("SELECT actor FROM idempotency_keys").fetchall() == [("ana",)]


def test_the_eleventh_write_destroys_the_first_envelope_and_keeps_its_metadata(client, conn, keyring):
    for n in range(1, 12):
        post(client, n=n)
    assert versions_of(conn)[:2] == [(1, True, None), (2, False, None)]
    assert len(versions_of(conn)) == 11
    history = client.get(f"{ENDPOINT}/versions").get_json()["versions"]
    assert [row["destroyed"] for row in history] == [False] * 10 + [True]
    refused = client.post(f"{ENDPOINT}/restore", json={"version": 1})
    assert refused.status_code == 400 and "was destroyed" in refused.get_json()["detail"]
    assert credentials.version_plaintext(conn, keyring, BARNES, 2) == ("user2", "pass2")


def test_retention_follows_the_setting(app_with, conn):
    client = app_with(credential_versions=2)
    for n in range(1, 5):
        post(client, n=n)
    assert versions_of(conn) == [(1, True, None), (2, True, None), (3, False, None), (4, False, None)]


def test_a_lowered_retention_destroys_every_envelope_past_it_at_the_next_write(app_with, conn):
    generous = app_with(credential_versions=6)
    for n in range(1, 31):  # a long history: each write past the retention destroys exactly one
        post(generous, n=n)
    assert [destroyed for _, destroyed, _ in versions_of(conn)] == [True] * 24 + [False] * 6
    post(app_with(credential_versions=2), n=31)
    assert [destroyed for _, destroyed, _ in versions_of(conn)] == [True] * 29 + [False] * 2


def test_restore_writes_the_old_plaintext_as_a_new_version(client, conn, keyring):
    post(client, {"username": "good", "password": "}sxh7_5}BdJ4K:Qf"})
    post(client, {"username": "broken", "password": "typo"})
    restored = client.post(f"{ENDPOINT}/restore", json={"version": 1}, headers={"If-Match": '"2"'})
    assert restored.status_code == 200 and restored.headers["ETag"] == '"3"'
    assert restored.get_json() == {
        "message": "Credentials restored",
        "allyId": BARNES,
        "allyName": "Barnes Inc",
        "version": 3,
        "restoredFrom": 1,
    }
    assert stored_credentials(conn, keyring, BARNES) == ("good", "}sxh7_5}BdJ4K:Qf")
    assert versions_of(conn)[-1] == (3, False, 1)
    assert audited(conn)[-1] == ("credentials.restore", "success", 200, "restored version 1")
    stale = client.post(f"{ENDPOINT}/restore", json={"version": 2}, headers={"If-Match": '"2"'})
    assert stale.status_code == 412 and stale.headers["ETag"] == '"3"'


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"version": 9}, "has no credentials version 9"),
        ({"version": "1"}, "the JSON body must be an object with version"),
        ({"version": True}, "the JSON body must be an object with version"),
        ({"version": 0}, "the JSON body must be an object with version"),
        ([1], "the JSON body must be an object with version"),
    ],
)
def test_a_restore_of_nothing_kept_is_refused_precisely(client, conn, body, detail):
    post(client, n=1)
    answer = client.post(f"{ENDPOINT}/restore", json=body)
    assert answer.status_code == 400 and detail in answer.get_json()["detail"]
    assert [row[0] for row in versions_of(conn)] == [1]
    assert audited(conn)[-1][:3] == ("credentials.restore", "rejected", 400)


def test_versions_continue_after_credentials_cleared_by_hand(client, conn):
    post(client, n=1)
    conn.execute(
        "UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials}', 'null') WHERE id = %s", (BARNES,)
    )
    assert post(client, n=2).headers["ETag"] == '"2"'


def test_credentials_from_before_versions_become_version_1(conn, database_url, keyring):
    from allies import db

    envelope = keyring.encrypt(BARNES, json.dumps({"username": "old", "password": "old"}).encode())
    conn.execute(
        "UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials}', %s) WHERE id = %s",
        (psycopg.types.json.Jsonb(envelope), BARNES),
    )
    conn.execute("DELETE FROM schema_applied")  # as after an upgrade: the schema's text changed
    for _ in range(2):  # idempotent
        db.ensure_schema(conn)
        conn.execute("DELETE FROM schema_applied")
    assert versions_of(conn) == [(1, False, None)]
    assert credentials.credentials_status(conn, BARNES).version == 1
    assert credentials.version_plaintext(conn, keyring, BARNES, 1) == ("old", "old")


# -- the real server -----------------------------------------------------------------------------


@pytest.mark.slow
def test_sixteen_writers_of_one_version_one_wins_each_round(serve, conn, keyring):
    base = serve(workers=2, ALLIES_CREDENTIAL_VERSIONS="100")
    url = f"{base}{ENDPOINT}"
    assert send("POST", url, {"username": "start", "password": "start"}).status == 200
    for round_number in range(1, 11):
        current = int(send("GET", url).headers["ETag"].strip('"'))
        answers = _race(url, current, [f"r{round_number}w{writer}" for writer in range(16)])
        statuses = sorted(answer.status for answer, _ in answers)
        assert statuses == [200] + [412] * 15, (round_number, statuses)
        [(winner, name)] = [(answer, name) for answer, name in answers if answer.status == 200]
        assert all(answer.headers["ETag"] == f'"{current + 1}"' for answer, _ in answers)
        assert credentials.version_plaintext(conn, keyring, BARNES, current + 1) == (name, f"{name}-password")
    assert [row[0] for row in versions_of(conn)] == list(range(1, 12))  # gapless


def _race(url: str, version: int, names: list[str]) -> list[tuple]:
    """One writer per name, all released at once, each with If-Match of `version`: (answer, name)."""
    gate, answers = threading.Barrier(len(names)), []

    def write(name: str) -> None:
        gate.wait()
        body = {"username": name, "password": f"{name}-password"}
        answers.append((send("POST", url, body, {"If-Match": f'"{version}"'}), name))

    threads = [threading.Thread(target=write, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.slow
def test_an_idempotent_retry_after_a_cut_connection_makes_one_version(serve, conn):
    base = serve()
    host, port = urlsplit(base).hostname, urlsplit(base).port
    body = json.dumps({"username": "once", "password": "once"}).encode()
    head = (
        f"POST {ENDPOINT} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: retry-me\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10) as cut:
        cut.sendall(head + body)
        deadline = time.monotonic() + 30
        while not versions_of(conn):  # the server has committed...
            assert time.monotonic() < deadline, "the request was never written"
            time.sleep(0.02)
    # ...and the connection is gone before its answer was read: the client cannot know it was written
    retry = send(
        "POST", f"{base}{ENDPOINT}", body, {"Content-Type": "application/json", "Idempotency-Key": "retry-me"}
    )
    assert retry.status == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["ETag"] == '"1"' and [row[0] for row in versions_of(conn)] == [1]


@pytest.mark.slow
def test_the_cli_lists_and_restores_versions(serve, conn, keyring):
    import subprocess

    base = serve()
    for n in (1, 2):
        send("POST", f"{base}{ENDPOINT}", {"username": f"user{n}", "password": f"pass{n}"})

    def allies(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["allies", "credentials", *args, "--api-url", base], capture_output=True,
                              text=True, env=allies_env(), timeout=60)  # fmt: skip

    history = allies("history", BARNES, "--json")
    assert history.returncode == 0, history.stderr
    assert [row["version"] for row in json.loads(history.stdout)["versions"]] == [2, 1]
    assert "pass" not in history.stdout
    table = allies("history", BARNES)
    assert "current" in table.stdout and "test-key-1" in table.stdout
    stale = allies("restore", BARNES, "--version", "1", "--if-version", "1")
    assert stale.returncode == 1 and "412" in stale.stderr and "current version is 2" in stale.stderr
    restored = allies("restore", BARNES, "--version", "1", "--if-version", "2")
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.strip() == f"version 1 restored for Barnes Inc ({BARNES}) as version 3"
    assert stored_credentials(conn, keyring, BARNES) == ("user1", "pass1")
    missing = allies("restore", BARNES, "--version", "9")
    assert missing.returncode == 1 and "has no credentials version 9" in missing.stderr


def test_a_start_on_an_applied_schema_waits_for_no_writer(database_url, conn):
    """`allies serve` starting beside replicas under load runs no DDL: a write in progress (its row
    and table locks held) does not make the start wait (before: CREATE INDEX IF NOT EXISTS did, and
    could deadlock with the writers)."""
    from allies import db

    with psycopg.connect(database_url) as writer:  # a write in flight, not committed
        writer.execute(
            "INSERT INTO credential_audit (actor, ally_id, action, outcome) VALUES ('w', 'a', 'x', 'y')"
        )
        writer.execute("INSERT INTO idempotency_keys VALUES ('w', 'k', 'f', 'a', 1, '{}')")
        with psycopg.connect(database_url, autocommit=True) as starting:
            starting.execute("SET lock_timeout = '1s'")
            db.ensure_schema(starting)  # would raise LockNotAvailable if it took a share lock
        writer.rollback()
