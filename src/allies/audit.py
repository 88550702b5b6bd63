"""The audit trail of credentials writes: one row per attempt, never a secret."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

MAX_FIELD_CHARS = 200  # attacker-controlled text (a bad id) is clipped before it is stored


@dataclass(frozen=True)
class Attempt:
    """Who tried to write which ally's credentials, from where, in which request."""

    actor: str
    ally_id: str
    client_addr: str | None
    request_id: str
    action: str = "credentials.set"


def record(
    conn: psycopg.Connection, attempt: Attempt, outcome: str, http_status: int, detail: str = ""
) -> None:
    """Insert the audit row of one attempt (in the caller's transaction)."""
    conn.execute(
        """
        INSERT INTO credential_audit
               (actor, ally_id, action, outcome, http_status, client_addr, request_id, detail)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            attempt.actor[:MAX_FIELD_CHARS],
            attempt.ally_id[:MAX_FIELD_CHARS],
            attempt.action,
            outcome,
            http_status,
            attempt.client_addr,
            attempt.request_id,
            detail[:MAX_FIELD_CHARS],
        ),
    )
