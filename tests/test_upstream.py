"""The original challenge's database (../shared/upstream/seed.sql, `data` JSON) works unchanged."""

from __future__ import annotations

import psycopg
import pytest
from conftest import (
    BARNES,
    CASE3_PASSWORD,
    CASE3_USERNAME,
    TEST_KEYS,
    YOUNG_WOLF,
    make_app,
    stored_credentials,
)

from allies.config import Settings
from allies.crypto import KeyRing
from allies.web.services import services


@pytest.fixture
def upstream_client(tmp_path, upstream_url):
    settings = Settings(
        home=tmp_path,
        database_url=upstream_url,
        keyring=KeyRing.parse(TEST_KEYS, "test"),
        log_file=tmp_path / "s.log",
    )
    app = make_app(settings)
    yield app.test_client()
    services(app).close()


def test_both_endpoints_work_on_the_original_database(upstream_client, upstream_url, keyring):
    with psycopg.connect(upstream_url) as conn:
        assert conn.execute("SELECT count(*) FROM stores").fetchone() == (300,)
        before = conn.execute("SELECT data FROM stores WHERE id = %s", (BARNES,)).fetchone()[0]

    assert upstream_client.get(f"/allies/{BARNES}/credentials").status_code == 400
    response = upstream_client.post(
        f"/allies/{BARNES}/credentials", json={"username": CASE3_USERNAME, "password": CASE3_PASSWORD}
    )
    assert response.status_code == 200
    assert response.get_json() == {"message": "Credentials added", "allyId": BARNES, "allyName": "Barnes Inc"}
    assert upstream_client.get(f"/allies/{BARNES}/credentials").get_json() == {
        "message": "Ally has credentials set!"
    }

    with psycopg.connect(upstream_url) as conn:
        column_type = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'stores' AND column_name = 'data'"
        ).fetchone()
        assert column_type == ("json",)
        after = conn.execute("SELECT data FROM stores WHERE id = %s", (BARNES,)).fetchone()[0]
        assert {k: v for k, v in after.items() if k != "credentials"} == {
            k: v for k, v in before.items() if k != "credentials"
        }
        assert stored_credentials(conn, keyring, BARNES) == (CASE3_USERNAME, CASE3_PASSWORD)
        raw = conn.execute("SELECT data::text FROM stores WHERE id = %s", (BARNES,)).fetchone()[0]
        assert CASE3_PASSWORD not in raw and CASE3_USERNAME not in raw


def test_unknown_and_case_stores_on_the_original_database(upstream_client):
    assert upstream_client.get(f"/allies/{YOUNG_WOLF}/credentials").status_code == 400
    assert upstream_client.get("/allies/00000000-0000-4000-8000-000000000000/credentials").status_code == 404
