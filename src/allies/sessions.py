"""Console sign-ins: a generation per person, kept in PostgreSQL (every replica sees it). A session
names the generation it was opened in; signing out moves the person's generation on, which ends
every session of theirs at once, on every browser and replica, cookies copied before included."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

CURRENT = """
INSERT INTO console_sessions AS s (actor) VALUES (%s)
ON CONFLICT (actor) DO UPDATE SET generation = s.generation
RETURNING generation
"""


def generation(conn: psycopg.Connection, actor: str) -> int:
    """The person's current generation (a first sign-in starts it at 0)."""
    return conn.execute(CURRENT, (actor,)).fetchone()[0]


def is_current(conn: psycopg.Connection, actor: str, session_generation: object) -> bool:
    row = conn.execute("SELECT generation FROM console_sessions WHERE actor = %s", (actor,)).fetchone()
    return row is not None and row[0] == session_generation


def end_all(conn: psycopg.Connection, actor: str) -> None:
    """Sign the person out everywhere: no session opened before this call is valid any more."""
    conn.execute("UPDATE console_sessions SET generation = generation + 1 WHERE actor = %s", (actor,))
