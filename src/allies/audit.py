"""The audit trail of credentials writes: one row per attempt, never a secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .text import printable

if TYPE_CHECKING:
    import psycopg


MAX_FIELD_CHARS = 200  # attacker-controlled text (a bad id) is clipped before it is stored
# Constants composed into SQL (never user input): the columns and their named parameters.
COLUMNS = "actor, ally_id, action, outcome, http_status, client_addr, request_id, detail"
PARAMETERS = ", ".join(f"%({name.strip()})s" for name in COLUMNS.split(","))
INSERT = f"INSERT INTO credential_audit ({COLUMNS}) VALUES ({PARAMETERS})"  # noqa: S608 - constants


@dataclass(frozen=True)
class Attempt:
    """Who tried to write which ally's credentials, from where, in which request."""

    actor: str
    ally_id: str
    client_addr: str | None
    request_id: str
    action: str = "credentials.set"

    def row(self, outcome: str, http_status: int | None, detail: str = "") -> dict:
        """The audit row's values, as the named parameters of INSERT."""
        return {
            "actor": _stored(self.actor),
            "ally_id": _stored(self.ally_id),
            "action": self.action,
            "outcome": outcome,
            "http_status": http_status,
            "client_addr": self.client_addr,
            "request_id": self.request_id,
            "detail": _stored(detail),
        }


def _stored(text: str) -> str:
    """Attacker-controlled text as stored: escaped (PostgreSQL text holds no NUL), then clipped."""
    return printable(text)[:MAX_FIELD_CHARS]


def record(
    conn: psycopg.Connection, attempt: Attempt, outcome: str, http_status: int, detail: str = ""
) -> None:
    """Insert the audit row of one attempt."""
    conn.execute(INSERT, attempt.row(outcome, http_status, detail))


def attempts(
    conn: psycopg.Connection, ally_id: str | None = None, failed: bool = False, since=None, limit: int = 50
) -> list[dict]:
    """The latest audit rows (oldest first), optionally of one ally, only failures, or since a time."""
    from psycopg.rows import dict_row  # the driver loads with the database: not for the triage alone

    rows = conn.cursor(row_factory=dict_row).execute(
        """
        SELECT * FROM (
            SELECT id, at, actor, ally_id, action, outcome, http_status, client_addr, request_id, detail
              FROM credential_audit
             WHERE (%(ally)s::text IS NULL OR ally_id = %(ally)s)
               AND (NOT %(failed)s OR outcome <> 'success')
               AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)
             ORDER BY id DESC LIMIT %(limit)s) AS latest
         ORDER BY id
        """,
        {"ally": ally_id, "failed": failed, "since": since, "limit": limit},
    )
    return rows.fetchall()
