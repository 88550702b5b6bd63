"""Case 4, second half: what the database says about the affected allies, and what to do for each.

No secret is ever part of a plan: the operator obtains the credentials from the ally and types
them at the prompt of `allies credentials set`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from .. import audit
from ..text import printable
from ..validation import is_valid_ally_id
from .analysis import AllyStats

if TYPE_CHECKING:
    import psycopg

# Likely cause of a failed credentials request, by status (this API's contract, and the original).
CAUSES = {
    400: "rejected as sent (malformed id, missing or empty field, invalid JSON, unknown ally): "
    "the audit table's `detail` says which",
    401: "not authenticated",
    404: "ally not found when the request was made (mistyped id, or the original API's 404)",
    405: "wrong HTTP method",
    413: "request body too large",
    429: "rate limited: retry after the Retry-After delay",
    500: "server error: see the server's error output around that time",
    503: "database unavailable at the time (outage): a retry now should succeed",
}


@dataclass(frozen=True)
class Version:
    """One credentials version, as its history says (never its content)."""

    number: int
    set_at: datetime
    actor: str


@dataclass(frozen=True)
class AllyRecord:
    """The ally as the database sees it now: its latest credentials versions, newest first."""

    exists: bool
    name: str | None = None
    credentials_set: bool = False
    versions: tuple[Version, ...] = ()

    @property
    def current(self) -> Version | None:
        return self.versions[0] if self.versions else None


VERSIONS_LOOKED_AT = 2  # the current version and the one before it: enough to say what to restore


def lookup(conn: psycopg.Connection, ally_ids: list[str]) -> dict[str, AllyRecord]:
    """Name, credentials status and latest versions of each id (ids with no store are marked missing)."""
    from ..credentials import IS_SET  # with the database driver: only when a database is used

    valid = [ally_id for ally_id in ally_ids if is_valid_ally_id(ally_id)]  # a NUL cannot even be sent
    rows = conn.execute(
        f"SELECT id, data::jsonb ->> 'name', {IS_SET} FROM stores WHERE id = ANY(%s)",  # noqa: S608
        (valid,),
    ).fetchall()
    history: dict[str, list[Version]] = {}
    for ally_id, number, set_at, actor in conn.execute(
        """
        SELECT ally_id, version, set_at, actor FROM (
            SELECT ally_id, version, set_at, actor,
                   row_number() OVER (PARTITION BY ally_id ORDER BY version DESC) AS nth
              FROM credential_versions WHERE ally_id = ANY(%s)) AS latest
         WHERE nth <= %s ORDER BY ally_id, version DESC
        """,
        (valid, VERSIONS_LOOKED_AT),
    ):
        history.setdefault(ally_id, []).append(Version(number, set_at, actor))
    found = {row[0]: AllyRecord(True, row[1], row[2], tuple(history.get(row[0], ()))) for row in rows}
    return {ally_id: found.get(ally_id, AllyRecord(False)) for ally_id in ally_ids}


AUDIT_SLACK = timedelta(minutes=1)  # clocks of the log and the database may differ a little


def audited_failures(conn: psycopg.Connection, stats: AllyStats) -> list[dict]:
    """The audit rows of this ally's failed attempts around the time the log shows them failing."""
    if stats.first_failure is None:
        return []
    start, end = stats.first_failure - AUDIT_SLACK, stats.last_failure + AUDIT_SLACK
    rows = audit.attempts(conn, stats.ally_id, failed=True, since=start, limit=100)
    return [
        {
            "at": row["at"].isoformat(),
            "outcome": row["outcome"],
            "http_status": row["http_status"],
            "detail": row["detail"],
        }
        for row in rows
        if row["at"] <= end
    ]


def causes(stats: AllyStats, record: AllyRecord | None = None) -> list[str]:
    """The likely cause of each failure status; the database, when known, rules some out."""
    found = []
    for status in sorted(stats.statuses):
        cause = CAUSES.get(status, "failed")
        if status == 404 and record is not None and record.exists:
            cause = (
                "the ally exists, so the 404 came from the route itself "
                "(wrong URL or method, or a server without the endpoint)"
            )
        found.append(f"{status}: {cause}")
    return found


def plan(stats: AllyStats, record: AllyRecord | None, api_url: str) -> list[str]:
    """The steps that fix one still-affected ally, and how to verify."""
    if not stats.valid_id:
        return [
            f"'{printable(stats.ally_id)}' is not a valid ally id: ask the client(s) "
            f"{', '.join(sorted(stats.clients))} which store they meant, then re-submit for that id",
        ]
    # The id comes from the log: quoted, so a command copied from here runs what it says.
    ally = shlex.quote(stats.ally_id)
    url = shlex.quote(f"{api_url}/allies/{quote(stats.ally_id, safe='')}/credentials")
    if record is not None and not record.exists:
        return [f"no store has id {ally}: confirm the id with the requester (mistyped?) before re-submitting"]
    if set(stats.methods) == {"GET"}:
        return [
            "only status checks (GET) failed, nothing was being written: check again now,",
            f"  allies credentials status {ally} --api-url {api_url}",
            "and re-submit with `allies credentials set` only if it answers: credentials not set",
        ]
    steps = _what_the_history_says(stats, record, ally, api_url) if record is not None else []
    steps += [
        "get the username and password from the ally (never from the log), then re-submit:",
        f"  allies credentials set {ally} --username <USERNAME> --api-url {api_url}",
        f"  or: curl -X POST {url} -H 'Content-Type: application/json' "
        '-d \'{"username": "<USERNAME>", "password": "<PASSWORD>"}\'',
        f"verify: allies credentials status {ally} --api-url {api_url}   (expect: credentials set)",
    ]
    return steps


def _what_the_history_says(stats: AllyStats, record: AllyRecord, ally: str, api_url: str) -> list[str]:
    current = record.current
    if current is None:
        if record.credentials_set:
            return ["credentials are set now (outside this log, without a version): confirm with the ally"]
        return []
    said = (
        f"version {current.number} set by {printable(current.actor)} at {current.set_at:%Y-%m-%d %H:%M:%S %Z}"
    )
    failed = f"{stats.failures} failed request{'s' if stats.failures != 1 else ''}"
    if stats.last_failure is not None and current.set_at > stats.last_failure:
        return [f"{said}, after the {failed}: recovered if it works; confirm with the ally"]
    steps = [f"current credentials: {said}, before the last of the {failed}"]
    if len(record.versions) > 1:
        previous = record.versions[1]
        steps += [
            f"if version {current.number} is what stopped working, version {previous.number} (set by "
            f"{printable(previous.actor)} at {_at(previous.set_at)}) can be restored:",
            f"  allies credentials restore {ally} --version {previous.number} --if-version {current.number} "
            f"--api-url {api_url}",
            "else:",
        ]
    return steps


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
