"""`allies audit` and `allies keys ...`: the audit trail and the encryption keys."""

from __future__ import annotations

import sys
from datetime import UTC

import click
from rich.table import Table

from .. import audit, keys
from ..crypto import new_key_entry
from ..keyfile import keyring_source, load_keyring
from ..text import printable
from ..validation import parse_ally_id, parse_time
from .base import CommandFailed, json_option, main, make_console, open_db, print_json, settings

console = make_console()


@main.command("audit")
@click.option("--ally", "ally_id", help="Only this ally.")
@click.option("--failed", is_flag=True, help="Only attempts that did not succeed.")
@click.option("--since", help="Only attempts at or after this time (ISO 8601; no zone: UTC).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1), help="The latest N rows.")
@json_option
def audit_command(ally_id: str | None, failed: bool, since: str | None, limit: int, as_json: bool) -> None:
    """List credentials write attempts: who, which ally, outcome, why — never a secret.

    \b
    Example:
        allies audit --failed --since 2026-11-02T08:00:00-05:00
    """
    start = parse_time(since) if since else None
    with open_db() as conn:
        rows = audit.attempts(conn, parse_ally_id(ally_id) if ally_id else None, failed, start, limit)
    if as_json:
        print_json([{**row, "at": row["at"].isoformat()} for row in rows])
        return
    if not rows:
        click.echo("No audit rows match.")
    for row in rows:  # one line per attempt, never wrapped, so it can be grepped and copied
        fields = [
            f"{row['at'].astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            row["actor"],
            row["ally_id"],
            row["action"],
            f"{row['outcome']} {row['http_status'] or '-'}",
            row["client_addr"] or "-",
            row["request_id"],
            row["detail"] or "",
        ]
        # Ids and details come from requests: escaped, so no client can forge a line here.
        click.echo("  ".join(printable(field) for field in fields).rstrip())


@main.group("keys")
def keys_group() -> None:
    """Encryption keys of the stored credentials: generate, status, rotate."""


@keys_group.command("generate")
@click.option("--id", "key_id", help="Key id [default: k<date>-<random>].")
def keys_generate(key_id: str | None) -> None:
    """Print a new AES-256 key entry, KEY_ID:BASE64KEY, for ALLIES_ENCRYPTION_KEYS or its file.

    Put it first to make it the active key, keep the old ones after it, then `allies keys rotate`.

    \b
    Example:
        allies keys generate >> .allies/new.key
    """
    click.echo(new_key_entry(key_id))
    click.echo(
        "allies: put this entry first in the key ring to make it active, then run `allies keys rotate`",
        err=True,
    )


@keys_group.command("status")
@json_option
def keys_status(as_json: bool) -> None:
    """The key ring (active key first) and how many stored credentials and kept versions each key
    id protects (a key that protects any is still needed: never remove it).

    \b
    Example:
        allies keys status
    """
    config = settings()
    ring = load_keyring(config)
    with open_db() as conn:
        used, kept = keys.usage(conn), keys.version_usage(conn)
    report = [
        {
            "key_id": kid,
            "active": kid == ring.active,
            "configured": kid in ring.keys,
            "credentials": used.get(kid, 0),
            "versions": kept.get(kid, 0),
        }
        for kid in [*ring.keys, *(k for k in {**used, **kept} if k not in ring.keys)]
    ]
    if as_json:
        print_json(report)
        return
    table = Table("key id", "active", "configured", "credentials", "kept versions")
    for row in report:
        table.add_row(
            row["key_id"],
            "yes" if row["active"] else "",
            "yes" if row["configured"] else "[red]NO[/]",
            str(row["credentials"]),
            str(row["versions"]),
        )
    console.print(table)
    click.echo(f"key ring: {keyring_source(config)}")


@keys_group.command("rotate")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1), help="Rows per transaction.")
@click.option("--max-rows", type=click.IntRange(1), help="Stop after this many rows (resume later).")
@json_option
def keys_rotate(batch: int, max_rows: int | None, as_json: bool) -> None:
    """Re-encrypt every stored credential and kept version under the active key, in batches; safe to re-run.

    Safe while the API serves writes (rows are locked batch by batch) and after an interruption
    (each batch commits whole; the next run resumes). Exit 1 if some envelope cannot be decrypted
    with the configured keys (they are listed and left as they are).

    \b
    Example:
        ALLIES_ENCRYPTION_KEYS="$NEW,$OLD" allies keys rotate
    """
    from rich.progress import Progress

    ring = load_keyring(settings())
    with open_db() as conn:
        total = keys.pending(conn, ring)
        with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task(f"re-encrypting under {ring.active}", total=total)
            result = keys.rotate(conn, ring, batch, max_rows, lambda n: bar.advance(task, n))
        remaining = keys.pending(conn, ring)
    summary = {
        "active": ring.active,
        "rotated": result.rotated,
        "versions_rotated": result.versions_rotated,
        "rows_per_second": round(result.rows_per_second),
        "remaining": remaining,
        "undecryptable": result.failed,
    }
    if as_json:
        print_json(summary)
    else:
        click.echo(
            f"allies: {result.rotated} credentials and {result.versions_rotated} kept versions re-encrypted "
            f"under {ring.active} ({summary['rows_per_second']} rows/s); {remaining} left on other keys"
        )
    if result.failed:
        raise CommandFailed(
            f"{len(result.failed)} envelopes cannot be decrypted with the configured keys: "
            + ", ".join(result.failed[:10])
        )
