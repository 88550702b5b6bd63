"""Database access: where the server is, the connection pool, and the schema."""

from __future__ import annotations

import hashlib
from importlib.resources import files

import psycopg
from psycopg_pool import ConnectionPool

from .config import Settings
from .embedded import EmbeddedPostgres

SCHEMA_LOCK_ID = 4_000_001  # advisory lock: two processes creating the schema wait for each other


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.home / "postgres", settings.db_port)


def database_url(settings: Settings, *, for_people: bool = False) -> str:
    """The URL to use: DATABASE_URL when given, else the embedded server (started if needed).

    `for_people` returns the TCP URL with the password, as typed into psql or DBeaver; otherwise
    the embedded server is reached through its unix socket.
    """
    if settings.database_url:
        return settings.database_url
    server = embedded_server(settings)
    server.start()
    return server.url if for_people else server.socket_url


def connect(url: str, **kwargs) -> psycopg.Connection:
    """One connection for a command-line operation (fails fast when the server is down)."""
    return psycopg.connect(url, connect_timeout=5, **kwargs)


def create_pool(url: str, *, max_size: int = 4, timeout: float = 3.0) -> ConnectionPool:
    """The process's pool. Connections are in autocommit: each request runs one statement, one round
    trip (multi-statement work opens `conn.transaction()`). A connection broken by a database restart
    fails its request with 503 once and is replaced; no per-checkout probe is paid on every request."""
    return ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        timeout=timeout,
        open=True,
        kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
        reconnect_timeout=0,
        name="allies",
    )


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the project's tables if missing (never alters an existing `stores`).

    The schema's text is applied once per version of it: its digest is recorded in
    `schema_applied`, and a start that finds it there runs no DDL at all. `CREATE INDEX IF NOT
    EXISTS` takes a share lock on its table even when the index exists, which would wait for the
    writes of running replicas and could deadlock with them (seen: a replica restarted under load)."""
    sql = files("allies").joinpath("schema.sql").read_text()
    digest = hashlib.sha256(sql.encode()).hexdigest()
    if _applied(conn, digest):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        if _applied(conn, digest):  # another process applied it while this one waited
            return
        conn.execute(sql)
        conn.execute(APPLIED_TABLE)
        conn.execute("INSERT INTO schema_applied (digest) VALUES (%s) ON CONFLICT DO NOTHING", (digest,))


APPLIED_TABLE = """
CREATE TABLE IF NOT EXISTS schema_applied (
    digest     TEXT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def _applied(conn: psycopg.Connection, digest: str) -> bool:
    if conn.execute("SELECT to_regclass('schema_applied')").fetchone()[0] is None:
        return False
    return conn.execute("SELECT 1 FROM schema_applied WHERE digest = %s", (digest,)).fetchone() is not None
