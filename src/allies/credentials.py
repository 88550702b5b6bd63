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

from . import audit
from .crypto import KeyRing
from .validation import AllyNotFound


@dataclass(frozen=True)
class Status:
    """Whether an ally exists and has credentials."""

    exists: bool
    is_set: bool = False


# Whether a store row holds credentials (any non-null `credentials` value), as an SQL expression.
IS_SET = "COALESCE(jsonb_typeof(data::jsonb -> 'credentials') <> 'null', false)"

# The write and its audit row in one statement: atomic, and a single round trip.
SET_AND_AUDIT = f"""
WITH updated AS (
    UPDATE stores
       SET data = jsonb_set(COALESCE(data::jsonb, '{{}}'), '{{credentials}}', %(envelope)s)
     WHERE id = %(id)s
    RETURNING data ->> 'name' AS name
), audited AS (
    INSERT INTO credential_audit ({audit.COLUMNS})
    SELECT {audit.PARAMETERS} FROM updated
)
SELECT name FROM updated
"""  # noqa: S608 - composed of constants only


def set_credentials(
    conn: psycopg.Connection,
    keyring: KeyRing,
    ally_id: str,
    username: str,
    password: str,
    attempt: audit.Attempt,
) -> str:
    """Encrypt and store the credentials of `ally_id` with its audit row; returns the store's name."""
    plaintext = json.dumps({"username": username, "password": password}).encode()
    envelope = keyring.encrypt(ally_id, plaintext)
    envelope["set_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    params = {"envelope": Jsonb(envelope), "id": ally_id, **attempt.row("success", 200)}
    row = conn.execute(SET_AND_AUDIT, params).fetchone()
    if row is None:
        raise AllyNotFound(f"unknown ally: no store has id {ally_id}")
    return row[0]


def credentials_status(conn: psycopg.Connection, ally_id: str) -> Status:
    """Whether the store exists and holds credentials (any non-null `credentials` value)."""
    row = conn.execute(f"SELECT {IS_SET} FROM stores WHERE id = %s", (ally_id,)).fetchone()  # noqa: S608
    return Status(exists=False) if row is None else Status(exists=True, is_set=row[0])
