"""Database down: the API answers 503 with Retry-After, then heals by itself when it is back."""

from __future__ import annotations

import time

import psycopg
from conftest import BARNES, TEST_KEYS, make_app

from allies.config import Settings
from allies.crypto import KeyRing
from allies.web.services import services


def test_outage_gives_503_then_the_app_recovers_without_restart(tmp_path, own_server):
    settings = Settings(
        home=tmp_path / "home",
        database_url=own_server.url,
        keyring=KeyRing.parse(TEST_KEYS, "test"),
        log_file=tmp_path / "server.log",
        db_timeout_seconds=1.0,
    )
    app = make_app(settings)
    client = app.test_client()
    try:
        assert client.get(f"/allies/{BARNES}/credentials").status_code == 400

        own_server.stop()
        for call in (
            lambda: client.get(f"/allies/{BARNES}/credentials"),
            lambda: client.post(f"/allies/{BARNES}/credentials", json={"username": "u", "password": "p"}),
            lambda: client.get("/health"),
        ):
            started = time.monotonic()
            response = call()
            # Bounded by the pool's wait (db_timeout_seconds, 1 s here and by default), never a hang.
            assert time.monotonic() - started < 3
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert response.get_json()["message"] == "Service unavailable"

        own_server.start()
        back = time.monotonic()
        while client.get("/health").status_code != 200:
            assert time.monotonic() - back < 5, "not recovered within 5 s of the database returning"
            time.sleep(0.1)
        response = client.post(f"/allies/{BARNES}/credentials", json={"username": "u", "password": "p"})
        assert response.status_code == 200
        with psycopg.connect(own_server.url) as conn:
            assert conn.execute("SELECT outcome FROM credential_audit").fetchall() == [("success",)]
    finally:
        services(app).close()
