"""Partner credentials of an ally: validate, encrypt and store them, tell whether they are set.

The encrypted envelope lives in `stores.data->'credentials'`. Every write is a single
`jsonb_set` inside the database, so it never rewrites (and never loses) other keys of the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from .crypto import KeyRing

ALLY_ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
MAX_USERNAME_CHARS = 256
MAX_PASSWORD_CHARS = 1024


class Rejected(Exception):
    """The request cannot be carried out as sent; `detail` says precisely why (no secrets)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AllyNotFound(Rejected):
    """No store has this id."""


@dataclass(frozen=True)
class Status:
    """Whether an ally exists and has credentials (and since when)."""

    exists: bool
    is_set: bool = False
    set_at: str | None = None
    key_id: str | None = None


def parse_ally_id(raw: str) -> str:
    """The ally id in canonical form (a lowercase UUID), or Rejected."""
    if not ALLY_ID_PATTERN.match(raw):
        raise Rejected("malformed ally id: expected a UUID like 1f585fc9-4926-468c-a728-eb34d80e9ea1")
    return raw.lower()


def parse_body(body: object) -> tuple[str, str]:
    """(username, password) from a decoded JSON body; `user` is accepted for `username`."""
    if not isinstance(body, dict):
        raise Rejected("the JSON body must be an object with username and password")
    if "username" in body and "user" in body and body["username"] != body["user"]:
        raise Rejected("send either username or user, not both with different values")
    username_key = "username" if "username" in body else "user"
    username = _required_text(body, username_key, "username", MAX_USERNAME_CHARS)
    password = _required_text(body, "password", "password", MAX_PASSWORD_CHARS)
    return username, password


def _required_text(body: dict, key: str, label: str, max_chars: int) -> str:
    if key not in body or body[key] is None:
        raise Rejected(f"missing field: {label}")
    value = body[key]
    if not isinstance(value, str):
        raise Rejected(f"field {label} must be a string")
    if not value.strip():
        raise Rejected(f"empty field: {label}")
    if len(value) > max_chars:
        raise Rejected(f"field {label} is longer than {max_chars} characters")
    return value


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
