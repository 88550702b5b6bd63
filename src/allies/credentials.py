"""Partner credentials of an ally: validate, encrypt and store them as versions, tell whether they
are set, give their history, restore an old version.

The current envelope lives in `stores.data->'credentials'`, with its version number
(`credentials_version`); every successful write is also a row of `credential_versions`, where
the last `keep` envelopes per ally are kept (older ones are destroyed, their metadata stays).
A write is a single statement inside the database (the envelope, its version, the retention and
its audit row), so it never rewrites (and never loses) other keys of the store, and two writes
can never take the same number.

Every face writes through `CredentialsWrite`, the one path: limit, authentication, validation,
preconditions, idempotent retries, the write and its audit row, the audit of whatever failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg
from psycopg.types.json import Jsonb

from . import audit
from .crypto import DecryptionError, KeyRing
from .failures import AlliesError
from .ratelimit import Sampler, SharedLimiter, WriteLimited
from .validation import AllyNotFound, Rejected, parse_ally_id, parse_body, parse_restore_body

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

logger = logging.getLogger("allies.credentials")

DEFAULT_VERSIONS_KEPT = 10
IDEMPOTENCY_HOURS = 24
IDEMPOTENCY_PURPOSE = b"idempotency-fingerprint"  # the HMAC key of fingerprints, derived from the ring


@dataclass(frozen=True)
class Status:
    """Whether an ally exists and has credentials, and their current version (None: not set, or
    set before versions by another tool)."""

    exists: bool
    is_set: bool = False
    version: int | None = None


# Whether a store row holds credentials (any non-null `credentials` value), as an SQL expression.
IS_SET = "COALESCE(jsonb_typeof(data::jsonb -> 'credentials') <> 'null', false)"
# The current version of a store row's credentials: NULL without credentials, 0 for an object that
# has none (foreign data), else its number.
CURRENT_VERSION = (
    "CASE WHEN jsonb_typeof(data::jsonb -> 'credentials') = 'object' "
    "THEN COALESCE((data::jsonb -> 'credentials' ->> 'credentials_version')::int, 0) END"
)


class NotAuthenticated(AlliesError):
    """Tokens are configured and the caller presented none of them."""

    def __init__(self) -> None:
        super().__init__("missing or wrong token")


class Conflict(AlliesError):
    """A precondition failed: the credentials changed since the writer read them."""

    def __init__(self, current: int | None) -> None:
        self.current = current
        super().__init__(
            f"current version is {current}"
            if current is not None
            else "current version is none: the ally has no credentials"
        )


class PreconditionRequired(Rejected):
    """The service requires every write to name the version it read (ALLIES_REQUIRE_IF_MATCH)."""

    status = 428


class IdempotencyMismatch(Rejected):
    """An Idempotency-Key used again, by the same actor, for a different request."""

    status = 422


@dataclass(frozen=True)
class Precondition:
    """What the writer read (HTTP's If-Match / If-None-Match): the write happens only if the current
    version still fits. `match`: one of these versions; `exists`: any credentials (If-Match: *);
    `none_match`: none of these; `absent`: no credentials (If-None-Match: *)."""

    match: tuple[int, ...] | None = None
    exists: bool = False
    none_match: tuple[int, ...] | None = None
    absent: bool = False

    @property
    def given(self) -> bool:
        return self.match is not None or self.exists or self.none_match is not None or self.absent

    def params(self) -> dict:
        return {
            "match": list(self.match) if self.match is not None else None,
            "must_exist": self.exists,
            "none_match": list(self.none_match) if self.none_match is not None else None,
            "must_be_absent": self.absent,
        }


NO_PRECONDITION = Precondition()


@dataclass(frozen=True)
class Asked:
    """What a face read from one request: its body (the credentials, or {"version": N} to restore),
    its precondition and its idempotency key."""

    body: object
    precondition: Precondition = NO_PRECONDITION
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Written:
    """What a successful write did: the ally (its canonical id), the store's name, the version it
    made; `replayed` when it is the answer of an earlier request with the same Idempotency-Key."""

    ally_id: str
    name: str | None
    version: int
    restored_from: int | None = None
    replayed: bool = False


# The write in one statement: the store's row is locked by its UPDATE, which takes the next version
# number from the row itself (re-read after any wait for the lock, so concurrent writers get
# consecutive numbers; the history's highest number counts too, for a row whose credentials were
# cleared by hand) and only when the precondition holds; then the version row, the retention, the
# idempotency record when asked, and the audit row. Atomic, and a single round trip.
WRITE = f"""
WITH RECURSIVE updated AS (
    UPDATE stores
       SET data = jsonb_set(
               COALESCE(data::jsonb, '{{}}'), '{{credentials}}',
               %(envelope)s || jsonb_build_object('credentials_version', GREATEST(
                   COALESCE({CURRENT_VERSION}, 0),
                   (SELECT COALESCE(max(version), 0) FROM credential_versions WHERE ally_id = %(id)s)) + 1))
     WHERE id = %(id)s
       AND (%(match)s::int[] IS NULL OR {CURRENT_VERSION} = ANY(%(match)s::int[]))
       AND (NOT %(must_exist)s OR {CURRENT_VERSION} IS NOT NULL)
       AND (%(none_match)s::int[] IS NULL OR {CURRENT_VERSION} IS NULL
            OR NOT {CURRENT_VERSION} = ANY(%(none_match)s::int[]))
       AND (NOT %(must_be_absent)s OR {CURRENT_VERSION} IS NULL)
    RETURNING data ->> 'name' AS name, (data -> 'credentials' ->> 'credentials_version')::int AS version
), versioned AS (
    INSERT INTO credential_versions (ally_id, version, envelope, kid, actor, request_id, restored_from)
    SELECT %(id)s, version, %(envelope)s, %(kid)s, %(actor)s, %(request_id)s, %(restored_from)s FROM updated
), doomed AS (
    -- The kept envelopes that fall out of the retention: walking down from the newest one past it,
    -- one primary-key lookup per version (numbers have no gaps) until the first one already
    -- destroyed, so a write costs the same after a thousand versions as after ten (a range scan
    -- `version <= n - keep` would read the whole history). A version committed while this write
    -- waited for the row lock is not seen here; the next write's walk, starting higher, takes it.
    SELECT version FROM credential_versions
     WHERE ally_id = %(id)s AND envelope IS NOT NULL
       AND version = (SELECT version FROM updated) - %(keep)s
    UNION ALL
    SELECT kept.version FROM credential_versions kept JOIN doomed ON kept.version = doomed.version - 1
     WHERE kept.ally_id = %(id)s AND kept.envelope IS NOT NULL
), destroyed AS (
    UPDATE credential_versions SET envelope = NULL, destroyed_at = now()
     WHERE ally_id = %(id)s AND version = ANY (ARRAY(SELECT version FROM doomed))
), remembered AS (
    INSERT INTO idempotency_keys (actor, key, fingerprint, ally_id, version, response)
    SELECT %(actor)s, %(idempotency_key)s, %(fingerprint)s, %(id)s, version,
           jsonb_build_object('name', name, 'version', version, 'restored_from', %(restored_from)s::int)
      FROM updated WHERE %(idempotency_key)s::text IS NOT NULL
), audited AS (
    INSERT INTO credential_audit ({audit.COLUMNS})
    SELECT {audit.PARAMETERS} FROM updated
)
SELECT name, version FROM updated
"""  # noqa: S608 - composed of constants only

STATUS = f"SELECT {IS_SET}, {CURRENT_VERSION} FROM stores WHERE id = %s"  # noqa: S608 - constants
# A key's answer within its 24 hours (an expired one is removed first: the key may be used again).
FORGET_EXPIRED_KEY = (
    "DELETE FROM idempotency_keys WHERE actor = %(actor)s AND key = %(key)s"
    " AND created_at < now() - make_interval(hours => %(hours)s)"
)
REMEMBERED = (
    "SELECT fingerprint, ally_id, version, response FROM idempotency_keys"
    " WHERE actor = %(actor)s AND key = %(key)s"
)
FORGET_EXPIRED_KEYS = "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => %s)"
VERSIONS = """
SELECT v.version, v.set_at, v.actor, v.kid AS key_id, v.request_id, v.restored_from,
       v.envelope IS NULL AS destroyed, v.destroyed_at,
       v.version = (s.data::jsonb -> 'credentials' ->> 'credentials_version')::int AS current
  FROM credential_versions v JOIN stores s ON s.id = v.ally_id
 WHERE v.ally_id = %s
 ORDER BY v.version DESC
"""


def set_credentials(
    conn: psycopg.Connection,
    keyring: KeyRing,
    ally_id: str,
    username: str,
    password: str,
    attempt: audit.Attempt,
    *,
    precondition: Precondition = NO_PRECONDITION,
    keep: int = DEFAULT_VERSIONS_KEPT,
    restored_from: int | None = None,
    idempotency: tuple[str, str] | None = None,
) -> Written:
    """Encrypt and store the credentials of `ally_id` as its next version, with its audit row.
    Raises AllyNotFound, or Conflict when `precondition` does not hold. `idempotency`: (key,
    fingerprint) to remember the answer by."""
    plaintext = json.dumps({"username": username, "password": password}).encode()
    envelope = keyring.encrypt(ally_id, plaintext)
    envelope["set_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    key, fingerprint = idempotency or (None, None)
    params = {
        "envelope": Jsonb(envelope),
        "id": ally_id,
        "kid": envelope["kid"],
        "keep": keep,
        "restored_from": restored_from,
        "idempotency_key": key,
        "fingerprint": fingerprint,
        **precondition.params(),
        **attempt.row("success", 200, f"restored version {restored_from}" if restored_from else ""),
    }
    row = conn.execute(WRITE, params).fetchone()
    if row is None:
        status = credentials_status(conn, ally_id)
        if not status.exists:
            raise AllyNotFound(f"unknown ally: no store has id {ally_id}")
        raise Conflict(status.version)
    return Written(ally_id, row[0], row[1], restored_from)


def credentials_status(conn: psycopg.Connection, ally_id: str) -> Status:
    """Whether the store exists and holds credentials (any non-null `credentials` value)."""
    row = conn.execute(STATUS, (ally_id,)).fetchone()
    return Status(exists=False) if row is None else Status(exists=True, is_set=row[0], version=row[1])


def versions(conn: psycopg.Connection, ally_id: str) -> list[dict]:
    """The ally's versions, newest first: number, time, actor, key id, request id, the version it
    restored, whether it is current or destroyed. Never an envelope."""
    from psycopg.rows import dict_row

    found = conn.cursor(row_factory=dict_row).execute(VERSIONS, (ally_id,)).fetchall()
    if not found and not credentials_status(conn, ally_id).exists:
        raise AllyNotFound(f"unknown ally: no store has id {ally_id}")
    return found


def version_plaintext(
    conn: psycopg.Connection, keyring: KeyRing, ally_id: str, version: int
) -> tuple[str, str]:
    """(username, password) of a kept version; Rejected when it does not exist or was destroyed."""
    row = conn.execute(
        "SELECT envelope FROM credential_versions WHERE ally_id = %s AND version = %s", (ally_id, version)
    ).fetchone()
    if row is None and not credentials_status(conn, ally_id).exists:
        raise AllyNotFound(f"unknown ally: no store has id {ally_id}")
    if row is None:
        raise Rejected(f"ally {ally_id} has no credentials version {version}")
    if row[0] is None:
        raise Rejected(
            f"version {version} of ally {ally_id} was destroyed (only the latest versions are kept); "
            "choose a kept version from its history"
        )
    try:
        data = json.loads(keyring.decrypt(ally_id, row[0]))
    except DecryptionError as exc:
        raise Rejected(str(exc)) from None
    return data["username"], data["password"]


class CredentialsWrite:
    """One attempt to set (or restore) an ally's credentials, from whichever face (the API, the
    console): the same steps in the same order, each failure audited, so the faces cannot disagree.

    1. `admit(authenticated)`: the write limit first (so guessing tokens is limited too), then who
       is calling. These refusals cost an attacker nothing, so they are audited sampled per client
       address (`refusals`); the next audited row counts the ones left out.
    2. `run(read)` or `restore(version)`: the ally id, the credentials (`read` returns the body;
       it may raise Rejected itself), the precondition, the idempotency key, the encrypted write as
       the next version with its audit row in one statement. A failure is audited in its own
       transaction, then raised for the face to render."""

    def __init__(
        self,
        pool: ConnectionPool,
        keyring: KeyRing,
        attempt: audit.Attempt,
        *,
        limiter: SharedLimiter | None = None,
        refusals: Sampler | None = None,
        keep: int = DEFAULT_VERSIONS_KEPT,
        require_precondition: bool = False,
    ) -> None:
        self.pool, self.keyring, self.limiter, self.refusals = pool, keyring, limiter, refusals
        self.attempt, self.keep, self.require_precondition = attempt, keep, require_precondition

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

    def run(self, read: Callable[[], Asked]) -> Written:
        """Validate, encrypt and store the credentials of the body `read` gives (it may raise
        Rejected itself): what was written, or raises what went wrong."""

        def credentials(ally_id: str, body: object) -> tuple[tuple[str, str], None]:
            return parse_body(body), None

        return self._audited(read, credentials)

    def restore(self, read: Callable[[], Asked]) -> Written:
        """Write the data of the version the body `read` gives ({"version": N}) as a new version."""
        self.attempt = replace(self.attempt, action="credentials.restore")

        def credentials(ally_id: str, body: object) -> tuple[tuple[str, str], int]:
            version = parse_restore_body(body)
            with self.pool.connection() as conn:
                return version_plaintext(conn, self.keyring, ally_id, version), version

        return self._audited(read, credentials)

    def _audited(self, read: Callable[[], Asked], credentials: Callable) -> Written:
        try:
            ally_id = parse_ally_id(self.attempt.ally_id)
            self.attempt = replace(self.attempt, ally_id=ally_id)  # audited under its one spelling
            asked = read()
            (username, password), restored_from = credentials(ally_id, asked.body)
            if self.require_precondition and not asked.precondition.given:
                raise PreconditionRequired(
                    'this service requires a precondition: send If-Match: "<version>" (the ETag of '
                    "GET /allies/<id>/credentials), or If-None-Match: * for an ally without credentials"
                )
            return self._write(ally_id, username, password, asked, restored_from)
        except Rejected as exc:
            self.audit_failure("rejected", exc.status, exc.detail)
            raise
        except Conflict as exc:
            self.audit_failure("conflict", 412, str(exc))
            raise
        except psycopg.OperationalError:
            raise  # the database is down: there is nowhere to write the audit row
        except Exception:
            self.audit_failure("error", 500, "server error")
            raise

    def _write(self, ally_id: str, username: str, password: str, asked: Asked, restored_from) -> Written:
        precondition, idempotency_key = asked.precondition, asked.idempotency_key
        fingerprint = idempotency_key and self._fingerprint(ally_id, username, password, restored_from)
        with self.pool.connection() as conn:
            for _ in range(2):  # a second time only when another request with the same key won the race
                if idempotency_key and (earlier := self._remembered(conn, idempotency_key, fingerprint)):
                    return earlier
                try:
                    return set_credentials(
                        conn, self.keyring, ally_id, username, password, self.attempt,
                        precondition=precondition, keep=self.keep, restored_from=restored_from,
                        idempotency=(idempotency_key, fingerprint) if idempotency_key else None,
                    )  # fmt: skip
                except psycopg.errors.UniqueViolation:
                    if not idempotency_key:
                        raise
                finally:
                    if idempotency_key:
                        _forget_expired_keys_now_and_then(conn)
            raise RuntimeError("an idempotency key was neither remembered nor written")

    def _remembered(self, conn: psycopg.Connection, key: str, fingerprint: str) -> Written | None:
        names = {"actor": self.attempt.actor, "key": key, "hours": IDEMPOTENCY_HOURS}
        conn.execute(FORGET_EXPIRED_KEY, names)
        row = conn.execute(REMEMBERED, names).fetchone()
        if row is None:
            return None
        known_fingerprint, ally_id, version, response = row
        if not hmac.compare_digest(known_fingerprint, fingerprint):
            raise IdempotencyMismatch(
                "this Idempotency-Key was already used for a different request (another ally, other "
                f"credentials or another action) within {IDEMPOTENCY_HOURS} hours: use a new key"
            )
        return Written(ally_id, response.get("name"), version, response.get("restored_from"), replayed=True)

    def _fingerprint(self, ally_id: str, username: str, password: str, restored_from: int | None) -> str:
        """A keyed hash of what is asked: the same request gives the same value, the value tells nothing
        of the secret (the key comes from the key ring, which never leaves the service)."""
        what = json.dumps([self.attempt.action, ally_id, username, password, restored_from]).encode()
        return hmac.new(self.keyring.derive(IDEMPOTENCY_PURPOSE), what, hashlib.sha256).hexdigest()

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


def forget_expired_idempotency_keys(conn: psycopg.Connection) -> int:
    """Remove the answers kept past their 24 hours; how many."""
    return conn.execute(FORGET_EXPIRED_KEYS, (IDEMPOTENCY_HOURS,)).rowcount


_forgotten_at = [0.0]  # when this process last removed expired keys (time.monotonic)


def _forget_expired_keys_now_and_then(conn: psycopg.Connection) -> None:
    """At most once a minute per process, on a write with a key: the table holds one day of keys."""
    now = time.monotonic()
    if now - _forgotten_at[0] >= 60:
        _forgotten_at[0] = now
        forget_expired_idempotency_keys(conn)
