"""Generated data: deterministic, shaped like the original, never overwriting."""

from __future__ import annotations

import psycopg
import pytest
from conftest import BARNES, YOUNG_WOLF

from allies import db, seed, stores


def empty_db(fresh_database) -> psycopg.Connection:
    connection = psycopg.connect(fresh_database(), autocommit=True)
    db.ensure_schema(connection)
    return connection


def all_rows(conn):
    return conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall()


def test_seeding_twice_into_empty_databases_gives_identical_rows(fresh_database):
    with empty_db(fresh_database) as first, empty_db(fresh_database) as second:
        assert seed.seed_stores(first) == 300
        assert seed.seed_stores(second) == 300
        assert all_rows(first) == all_rows(second)


def test_generated_stores_have_the_original_shape(conn):
    rows = all_rows(conn)
    assert len(rows) == 300
    for _, data in rows:
        assert set(data) == {
            "name", "tags", "brand_owner", "discount", "maxAmount", "minAmount", "credentials",
        }  # fmt: skip
        tags = data["tags"]
        assert set(tags) == {"tag1", "tag2", "tag3"}
        assert len(set(tags.values())) == 3 and set(tags.values()) <= set(stores.TAG_NAMES)
        assert 1.5 <= data["discount"] <= 99.9 and round(data["discount"], 1) == data["discount"]
        assert 0 <= data["minAmount"] <= 10 and 50 <= data["maxAmount"] <= 100
        assert data["credentials"] is None
        assert data["name"] and data["brand_owner"]


def test_the_case_stores_are_always_there(conn):
    young = conn.execute("SELECT data FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]
    assert young["name"] == "Young-Wolf"
    assert young["tags"] == {"tag1": "finanzas", "tag2": "movilidad", "tag3": "tecnologia"}
    barnes = conn.execute("SELECT data FROM stores WHERE id = %s", (BARNES,)).fetchone()[0]
    assert barnes["name"] == "Barnes Inc"


def test_seeding_refuses_a_table_with_rows_and_changes_nothing(conn):
    before = all_rows(conn)
    with pytest.raises(seed.SeedError, match="already holds 300 rows"):
        seed.seed_stores(conn, 10)
    assert all_rows(conn) == before


def test_seed_count_below_the_case_stores_is_refused():
    with pytest.raises(seed.SeedError, match="at least 2"):
        seed.generate_stores(1)


def test_seed_reports_progress_for_every_row(fresh_database):
    seen = []
    with empty_db(fresh_database) as conn:
        seed.seed_stores(conn, 25_001, seen.append)
        assert sum(seen) == 25_001 == seed.count_stores(conn)
        assert len({r[0] for r in conn.execute("SELECT id FROM stores")}) == 25_001
