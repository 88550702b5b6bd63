"""A unique canary secret sent through every path — API (success, every failure, a server error),
CLI, key rotation — appears nowhere afterwards but inside the ciphertext: not in a pg_dump, a log,
a server's output, a response body or a CLI's output."""

from __future__ import annotations

import json
import subprocess
import uuid

import psycopg
import pytest
from conftest import BARNES, TEST_KEYS, YOUNG_WOLF, allies_env, stored_credentials
from helpers.http import send

from allies.crypto import KeyRing, new_key_entry
from allies.embedded import bin_dir

pytestmark = [pytest.mark.served]

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def test_a_canary_secret_leaks_nowhere(serve, database_url, settings, tmp_path):
    canary = f"canary-{uuid.uuid4().hex}"
    base = serve()
    with psycopg.connect(database_url, autocommit=True) as conn:  # a store whose update fails: a 500
        broken = conn.execute(
            "SELECT id FROM stores WHERE id <> ALL(%s) LIMIT 1", ([BARNES, YOUNG_WOLF],)
        ).fetchone()[0]
        conn.execute("UPDATE stores SET data = '[1]' WHERE id = %s", (broken,))
    body = json.dumps({"username": canary, "password": canary}).encode()
    requests = [
        (f"{base}/allies/{BARNES}/credentials", body, 200),
        (f"{base}/allies/{UNKNOWN}/credentials", body, 400),
        (f"{base}/allies/not-an-id/credentials", body, 400),
        (f"{base}/allies/{YOUNG_WOLF}/credentials", json.dumps({"username": canary}).encode(), 400),
        (f"{base}/allies/{YOUNG_WOLF}/credentials", b'{"password": "' + canary.encode() + b'"', 400),
        (f"{base}/allies/{YOUNG_WOLF}/credentials", canary.encode() * 1000, 413),
        (f"{base}/allies/{YOUNG_WOLF}/credentials?password={canary}", body, 200),
        (f"{base}/allies/{broken}/credentials", body, 500),
    ]
    bodies = []
    for url, data, expected in requests:
        status, answer, _ = send("POST", url, data, {"Content-Type": "application/json"})
        assert status == expected, (url[:80], status, answer)
        bodies.append(answer)
    cli = subprocess.run(
        ["allies", "credentials", "set", UNKNOWN, "--username", canary, "--password-stdin", "--api-url", base],
        input=canary + "\n", capture_output=True, text=True, env=allies_env(), timeout=60,
    )  # fmt: skip
    assert cli.returncode == 1
    rotated_ring = f"{new_key_entry('k2')},{TEST_KEYS}"
    rotation = subprocess.run(
        ["allies", "keys", "rotate"],
        capture_output=True, text=True, timeout=60,
        env=allies_env(DATABASE_URL=database_url, ALLIES_ENCRYPTION_KEYS=rotated_ring, ALLIES_HOME=str(tmp_path)),
    )  # fmt: skip
    assert rotation.returncode == 0, rotation.stderr

    dump = subprocess.run(
        [str(bin_dir() / "pg_dump"), database_url], capture_output=True, text=True, check=True
    ).stdout
    server_output = "".join(path.read_text(errors="replace") for path in tmp_path.glob("serve-*.out"))
    places = {
        "pg_dump": dump,
        "server.log": settings.log_file.read_text(),
        "server stdout/stderr": server_output,
        "responses": b"".join(bodies).decode(errors="replace"),
        "CLI output": cli.stdout + cli.stderr + rotation.stdout + rotation.stderr,
    }
    assert {place: text.count(canary) for place, text in places.items()} == dict.fromkeys(places, 0)
    assert "POST /allies/" in places["server.log"] and "k2" in dump  # the places were really looked at
    with psycopg.connect(database_url) as conn:  # and the canary is there, encrypted
        assert stored_credentials(conn, KeyRing.parse(rotated_ring, "t"), BARNES) == (
            canary,
            canary,
        )
        assert stored_credentials(conn, KeyRing.parse(rotated_ring, "t"), YOUNG_WOLF) == (
            canary,
            canary,
        )
