"""Partner credentials of an ally: validate, encrypt and store them, tell whether they are set.

The encrypted envelope lives in `stores.data->'credentials'`. Every write is a single
`jsonb_set` inside the database, so it never rewrites (and never loses) other keys of the store.
Every face writes through `CredentialsWrite`, the one path: limit, authentication, validation,
the write and its audit row, the audit of whatever failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg
from psycopg.types.json import Jsonb

from . import audit
from .crypto import KeyRing
from .failures import AlliesError
from .ratelimit import Sampler, SharedLimiter, WriteLimited
from .validation import AllyNotFound, Rejected, parse_ally_id, parse_body

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

logger = logging.getLogger("allies.credentials")


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


class NotAuthenticated(AlliesError):
    """Tokens are configured and the caller presented none of them."""

    def __init__(self) -> None:
        super().__init__("missing or wrong token")


@dataclass(frozen=True)
class Written:
    """What a successful write did: the ally (its canonical id) and the store's name."""

    ally_id: str
    name: str | None


class CredentialsWrite:
    """One attempt to set an ally's credentials, from whichever face (the API, the console): the same
    steps in the same order, each failure audited, so the faces cannot disagree.

    1. `admit(authenticated)`: the write limit first (so guessing tokens is limited too), then who
       is calling. These refusals cost an attacker nothing, so they are audited sampled per client
       address (`refusals`); the next audited row counts the ones left out.
    2. `run(read)`: the ally id, the body `read` returns (it may raise Rejected itself), the
       encrypted write and its audit row in one statement. A failure is audited in its own
       transaction, then raised for the face to render."""

    def __init__(
        self,
        pool: ConnectionPool,
        keyring: KeyRing,
        attempt: audit.Attempt,
        *,
        limiter: SharedLimiter | None = None,
        refusals: Sampler | None = None,
    ) -> None:
        self.pool, self.keyring, self.limiter, self.refusals = pool, keyring, limiter, refusals
        self.attempt = attempt

    def admit(self, authenticated: bool) -> None:
        """Raises ratelimit.WriteLimited or NotAuthenticated (both audited, sampled)."""
        try:
            if self.limiter is not None:
                self.limiter.check(self.attempt.client_addr or "-")
            if not authenticated:
                raise NotAuthenticated()
        except WriteLimited as exc:
            self._audit_refusal("rate_limited", 429, f"limit: {exc.limit}")
            raise
        except NotAuthenticated as exc:
            self._audit_refusal("unauthorized", 401, str(exc))
            raise

    def run(self, read: Callable[[], object]) -> Written:
        """Validate, encrypt and store; returns what was written, or raises what went wrong."""
        try:
            ally_id = parse_ally_id(self.attempt.ally_id)
            self.attempt = replace(self.attempt, ally_id=ally_id)  # audited under its one spelling
            username, password = parse_body(read())
            with self.pool.connection() as conn:
                name = set_credentials(conn, self.keyring, ally_id, username, password, self.attempt)
        except Rejected as exc:
            self.audit_failure("rejected", exc.status, exc.detail)
            raise
        except psycopg.OperationalError:
            raise  # the database is down: there is nowhere to write the audit row
        except Exception:
            self.audit_failure("error", 500, "server error")
            raise
        return Written(ally_id, name)

    def audit_failure(self, outcome: str, status: int, detail: str) -> None:
        """Best effort: a failed attempt is audited in its own transaction."""
        try:
            with self.pool.connection() as conn:
                audit.record(conn, self.attempt, outcome, status, detail)
        except psycopg.Error:
            logger.warning("could not audit failed request %s", self.attempt.request_id)

    def _audit_refusal(self, outcome: str, status: int, detail: str) -> None:
        unaudited = self.refusals.admit(self.attempt.client_addr or "-") if self.refusals else 0
        if unaudited is None:
            return
        note = f" (+{unaudited} earlier refusals of this address not audited)" if unaudited else ""
        self.audit_failure(outcome, status, detail + note)
