"""Database access: where the server is, the connection pool, and the schema."""

from __future__ import annotations

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
    """Create the project's tables if missing (never alters an existing `stores`)."""
    sql = files("allies").joinpath("schema.sql").read_text()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        conn.execute(sql)
