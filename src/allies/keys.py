"""Key management: which key protects how many credentials, and rotation to the active key.

Rotation re-encrypts, in batches, every stored envelope whose key id is not the active one: the
current credentials of each store, then every kept version (`credential_versions`). Each
batch is one transaction that locks its rows (FOR UPDATE SKIP LOCKED): a credentials write that
arrives meanwhile waits and then lands on top, already under the active key, so it is never
reverted; a batch that is interrupted is rolled back whole, and the next run resumes. Plaintext
exists only inside this process, for the time of one re-encryption.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from . import audit
from .crypto import DecryptionError, KeyRing
from .failures import AlliesError

ROTATION_ACTOR = "rotation"
NO_KEY_ID = "?"  # `usage` of credential objects without a key id: no key ring can open them
KEY_RING_LOCK_ID = 4_000_002  # advisory lock: instances check and record their key rings one at a time
SHARE_THE_RING = (
    "every instance of a database must hold its key ring: set ALLIES_ENCRYPTION_KEYS (or "
    "ALLIES_ENCRYPTION_KEYS_FILE) to the ring of the instance that wrote them, from one secret"
)


class KeyRingMismatch(AlliesError):
    """This instance's key ring does not fit the database's: one line saying which key and what to do."""


def known_keys(conn: psycopg.Connection) -> dict[str, str]:
    """{key id: check value} of the keys the database has been served with."""
    return dict(conn.execute("SELECT kid, check_value FROM key_ring").fetchall())


def refuse_a_new_key(conn: psycopg.Connection) -> None:
    """Before a home generates its own key: refused when the database already has keys or
    credentials (they were written with another instance's ring)."""
    used, known = keyed_usage(conn), known_keys(conn)
    if used or known:
        ids = ", ".join(sorted({*used, *known}))
        raise KeyRingMismatch(
            f"this home has no key file, and the database already knows key(s) {ids} "
            f"({sum(used.values())} stored credentials): not generating another; {SHARE_THE_RING}"
        )


def enforce(conn: psycopg.Connection, keyring: KeyRing) -> None:
    """Refuse a key ring that could write credentials the other instances cannot read (another key
    under a known id, or no known key at all), or that cannot read stored ones (a key id missing);
    else record its keys, so the next instance is checked against them too. Instances starting at
    the same moment are checked one after the other (an advisory lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (KEY_RING_LOCK_ID,))
        known = known_keys(conn)
        for kid in keyring.keys:
            if kid in known and known[kid] != keyring.check_value(kid):
                raise KeyRingMismatch(
                    f"key id {kid} of this instance is not the key the database knows as {kid}; "
                    f"{SHARE_THE_RING}"
                )
        current, kept = usage(conn), version_usage(conn)
        for kid in sorted(keyed_usage(conn)):
            if kid not in keyring.keys:
                protects = f"{current.get(kid, 0)} stored credentials and {kept.get(kid, 0)} kept versions"
                raise KeyRingMismatch(
                    f"this instance's key ring lacks key id {kid}, which protects {protects}; "
                    + SHARE_THE_RING
                )
        if known and not known.keys() & keyring.keys.keys():
            raise KeyRingMismatch(
                f"none of this instance's keys ({', '.join(keyring.keys)}) is one the database knows "
                f"({', '.join(sorted(known))}); {SHARE_THE_RING}"
            )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO key_ring (kid, check_value) VALUES (%s, %s) ON CONFLICT (kid) DO NOTHING",
                [(kid, keyring.check_value(kid)) for kid in keyring.keys],
            )


STALE = """
    jsonb_typeof(data::jsonb -> 'credentials') = 'object'
    AND data::jsonb -> 'credentials' ->> 'kid' IS DISTINCT FROM %(active)s
"""


def usage(conn: psycopg.Connection) -> dict[str, int]:
    """{key id: number of stored credentials it protects} (NO_KEY_ID for objects without one)."""
    rows = conn.execute(
        """
        SELECT COALESCE(data::jsonb -> 'credentials' ->> 'kid', %s), count(*)
          FROM stores
         WHERE jsonb_typeof(data::jsonb -> 'credentials') = 'object'
         GROUP BY 1 ORDER BY 1
        """,
        (NO_KEY_ID,),
    ).fetchall()
    return dict(rows)


def version_usage(conn: psycopg.Connection) -> dict[str, int]:
    """{key id: number of kept credentials versions it protects} (destroyed ones need no key)."""
    rows = conn.execute(
        "SELECT kid, count(*) FROM credential_versions WHERE envelope IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return dict(rows)


def keyed_usage(conn: psycopg.Connection) -> dict[str, int]:
    """{key id: envelopes it protects}, current credentials and kept versions together; credentials
    objects without a key id say nothing about the ring."""
    used = {kid: count for kid, count in usage(conn).items() if kid != NO_KEY_ID}
    for kid, count in version_usage(conn).items():
        used[kid] = used.get(kid, 0) + count
    return used


@dataclass
class Rotation:
    rotated: int = 0  # current credentials re-encrypted
    versions_rotated: int = 0  # kept versions re-encrypted
    failed: list[str] = field(default_factory=list)  # ids whose envelope could not be decrypted
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rotated / self.seconds if self.seconds else 0.0


STALE_VERSION = "envelope IS NOT NULL AND kid IS DISTINCT FROM %(active)s"


def pending(conn: psycopg.Connection, keyring: KeyRing) -> int:
    """Envelopes left to re-encrypt: current credentials and kept versions."""
    query = f"""
        SELECT (SELECT count(*) FROM stores WHERE {STALE})
             + (SELECT count(*) FROM credential_versions WHERE {STALE_VERSION})
    """  # noqa: S608 - constants
    return conn.execute(query, {"active": keyring.active}).fetchone()[0]


def rotate(
    conn: psycopg.Connection,
    keyring: KeyRing,
    batch: int = 500,
    max_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Rotation:
    """Re-encrypt stale envelopes under the active key, `batch` rows per transaction."""
    result, started = Rotation(), time.perf_counter()
    skip: list[str] = []  # rows that failed to decrypt: not retried in this run
    while max_rows is None or result.rotated < max_rows:
        size = batch if max_rows is None else min(batch, max_rows - result.rotated)
        with conn.transaction():
            rows = conn.execute(
                f"""
                SELECT id, data::jsonb -> 'credentials' FROM stores
                 WHERE {STALE} AND NOT (id = ANY(%(skip)s))
                 ORDER BY id LIMIT %(size)s FOR UPDATE SKIP LOCKED
                """,  # noqa: S608 - STALE is a constant
                {"active": keyring.active, "skip": skip, "size": size},
            ).fetchall()
            if not rows:
                break
            done = _reencrypt(conn, keyring, rows, skip)
        result.rotated += done
        if progress:
            progress(len(rows))
    result.failed = skip
    if max_rows is None or result.rotated < max_rows:  # then the kept versions (not counted in max_rows)
        _rotate_versions(conn, keyring, batch, result, progress)
    result.seconds = time.perf_counter() - started
    return result


def _rotate_versions(
    conn: psycopg.Connection, keyring: KeyRing, batch: int, result: Rotation, progress
) -> None:
    """The kept versions, batch by batch (locked, skipped while a write holds them: the next run
    takes them); one that cannot be decrypted is left as it is and listed."""
    skip: list[str] = []  # "ALLY VERSION" (an id holds no space)
    while True:
        with conn.transaction():
            rows = conn.execute(
                f"""
                SELECT ally_id, version, envelope FROM credential_versions
                 WHERE {STALE_VERSION} AND NOT (ally_id || ' ' || version = ANY(%(skip)s::text[]))
                 ORDER BY ally_id, version LIMIT %(size)s FOR UPDATE SKIP LOCKED
                """,  # noqa: S608 - a constant
                {"active": keyring.active, "skip": skip, "size": batch},
            ).fetchall()
            if not rows:
                return
            updates: list[dict] = []
            for ally_id, version, envelope in rows:
                try:
                    fresh = keyring.encrypt(ally_id, keyring.decrypt(ally_id, envelope))
                except DecryptionError:
                    skip.append(f"{ally_id} {version}")
                    result.failed.append(f"{ally_id} (version {version})")
                    continue
                fresh["set_at"] = envelope.get("set_at")
                updates.append(
                    {"id": ally_id, "version": version, "envelope": Jsonb(fresh), "kid": fresh["kid"]}
                )
            with conn.cursor() as cursor:
                cursor.executemany(
                    "UPDATE credential_versions SET envelope = %(envelope)s, kid = %(kid)s"
                    " WHERE ally_id = %(id)s AND version = %(version)s",
                    updates,
                )
        result.versions_rotated += len(updates)
        if progress:
            progress(len(rows))


def _reencrypt(conn: psycopg.Connection, keyring: KeyRing, rows: list[tuple], skip: list[str]) -> int:
    updates, audits = [], []
    for ally_id, envelope in rows:
        try:
            plaintext = keyring.decrypt(ally_id, envelope)
        except DecryptionError:
            skip.append(ally_id)
            continue
        fresh = keyring.encrypt(ally_id, plaintext)
        # The credentials did not change, their key did: their time and version number stay.
        fresh["set_at"] = envelope.get("set_at")
        if "credentials_version" in envelope:
            fresh["credentials_version"] = envelope["credentials_version"]
        updates.append({"id": ally_id, "envelope": Jsonb(fresh)})
        attempt = audit.Attempt(
            ROTATION_ACTOR, ally_id, None, f"rotate-to-{keyring.active}", "credentials.rotate"
        )
        audits.append(
            attempt.row("success", 0, f"re-encrypted from {envelope.get('kid')} to {keyring.active}")
        )
    with conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials}', %(envelope)s) "
            "WHERE id = %(id)s",
            updates,
        )
        cursor.executemany(audit.INSERT, audits)
    return len(updates)
