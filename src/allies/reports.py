"""Reports that run the runbook's own SQL files, so the CLI and psql/DBeaver give the same answer."""

from __future__ import annotations

from importlib.resources import files

import psycopg

TAGS_SQL = "01_tags_distribution.sql"


def sql_file(name: str) -> str:
    """The text of a deliverable in sql/ (shipped inside the package as allies/sql/)."""
    return files("allies").joinpath("sql", name).read_text()


def tag_distribution(conn: psycopg.Connection) -> list[dict]:
    """Case 1: [{"tag": ..., "stores": ...}], most used first (sql/01_tags_distribution.sql)."""
    rows = conn.execute(sql_file(TAGS_SQL)).fetchall()
    return [{"tag": tag, "stores": stores} for tag, stores in rows]


def store_counts(conn: psycopg.Connection) -> dict:
    """How many stores there are, and how many have credentials set."""
    from .credentials import IS_SET

    stores, with_credentials = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {IS_SET}) FROM stores"  # noqa: S608 - a constant
    ).fetchone()
    return {"stores": stores, "with_credentials": with_credentials}
