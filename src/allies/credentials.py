"""Partner credentials of an ally: validate, encrypt and store them, tell whether they are set.

The encrypted envelope lives in `stores.data->'credentials'`. Every write is a single
`jsonb_set` inside the database, so it never rewrites (and never loses) other keys of the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from .crypto import KeyRing
from .validation import AllyNotFound, Rejected


@dataclass(frozen=True)
class Status:
    """Whether an ally exists and has credentials (and since when)."""

    exists: bool
    is_set: bool = False
    set_at: str | None = None
    key_id: str | None = None


def set_credentials(
    conn: psycopg.Connection, keyring: KeyRing, ally_id: str, username: str, password: str
) -> str:
    """Encrypt and store the credentials of `ally_id`; returns the store's name."""
    plaintext = json.dumps({"username": username, "password": password}).encode()
    envelope = keyring.encrypt(ally_id, plaintext)
    envelope["set_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    row = conn.execute(
        """
        UPDATE stores
           SET data = jsonb_set(COALESCE(data::jsonb, '{}'), '{credentials}', %s)
         WHERE id = %s
        RETURNING data->>'name'
        """,
        (Jsonb(envelope), ally_id),
    ).fetchone()
    if row is None:
        raise AllyNotFound(f"unknown ally: no store has id {ally_id}")
    return row[0]


def _stored_credentials(conn: psycopg.Connection, ally_id: str) -> tuple | None:
    """The row `(credentials,)` of the store, or None when no store has this id."""
    return conn.execute("SELECT data::jsonb->'credentials' FROM stores WHERE id = %s", (ally_id,)).fetchone()


def credentials_status(conn: psycopg.Connection, ally_id: str) -> Status:
    """Whether the store exists and holds credentials (any non-null `credentials` value)."""
    row = _stored_credentials(conn, ally_id)
    if row is None:
        return Status(exists=False)
    stored = row[0]
    if stored is None:
        return Status(exists=True)
    envelope = stored if isinstance(stored, dict) else {}
    return Status(exists=True, is_set=True, set_at=envelope.get("set_at"), key_id=envelope.get("kid"))


def read_credentials(conn: psycopg.Connection, keyring: KeyRing, ally_id: str) -> tuple[str, str]:
    """Decrypt the stored (username, password): for the code that talks to partners, never an API."""
    row = _stored_credentials(conn, ally_id)
    if row is None:
        raise AllyNotFound(f"unknown ally: no store has id {ally_id}")
    if not isinstance(row[0], dict):
        raise Rejected(f"ally {ally_id} has no encrypted credentials")
    secret = json.loads(keyring.decrypt(ally_id, row[0]))
    return secret["username"], secret["password"]
