"""`allies logs triage`: case 4 from the terminal — failed requests, affected allies, the fix."""

from __future__ import annotations

import functools
import sys

import click

from .. import triage
from ..text import printable
from ..triage import remediation
from ..validation import parse_time
from .base import (
    InputError,
    api_url_option,
    json_option,
    literal,
    main,
    make_console,
    print_json,
    redact,
    settings,
)

EXIT_AFFECTED = 3
RECOVERED_SHOWN = 3


@main.group("logs")
def logs_group() -> None:
    """Read server logs (case 4)."""


@logs_group.command("triage")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@json_option(help="Print the report as JSON.")
@click.option(
    "--timeline",
    is_flag=True,
    help="With --json: add failures_over_time (failed requests by minute and status).",
)
@click.option("--since", help="Only requests at or after this time (ISO 8601; no zone: UTC).")
@click.option("--until", help="Only requests at or before this time.")
@click.option(
    "--all-endpoints", is_flag=True, help="Count every /allies/<id>/... request, not just credentials."
)
@click.option("--db", "db_url", help="Database to look the allies up in [default: DATABASE_URL if set].")
@click.option("--fail-on-affected", is_flag=True, help=f"Exit {EXIT_AFFECTED} if an ally is still affected.")
@click.option(
    "--audit", "with_audit", is_flag=True, help="Cross-check each ally's failures with the audit table."
)
@api_url_option
def triage_command(
    paths: tuple[str, ...],
    as_json: bool,
    timeline: bool,
    since: str | None,
    until: str | None,
    all_endpoints: bool,
    db_url: str | None,
    fail_on_affected: bool,
    with_audit: bool,
    api_url: str,
) -> None:
    """Count failed requests and find the allies whose credentials requests failed.

    Reads Apache common/combined logs, plain or gzip, several files or `-` (stdin). An ally
    whose latest request succeeded is marked recovered; the others are still affected and get a
    remediation plan. With a database (--db or DATABASE_URL) each ally's name and current
    credentials status are shown. Exit 0 when the analysis ran, 2 for unreadable input, 3 with
    --fail-on-affected when an ally is still affected.

    \b
    Example:
        allies logs triage log/example.log
        zcat old.log.gz | allies logs triage - --since 2023-11-02T22:00:00-05:00 --json
    """
    window = triage.Window(parse_time(since) if since else None, parse_time(until) if until else None)
    report = triage.analyze(paths, window, all_endpoints, timeline=timeline and as_json)  # bad input: exit 2
    url = db_url or settings().database_url
    if with_audit and not url:
        raise InputError("--audit needs the database: give --db URL or set DATABASE_URL")
    records = _lookup(url, [s.ally_id for s in report.affected()])
    audits = _audit(url, report) if with_audit and records is not None else None
    if as_json:
        print_json(_as_json(report, records, audits, api_url))
    else:
        _print_report(report, records, audits, api_url)
    if fail_on_affected and report.still_affected():
        sys.exit(EXIT_AFFECTED)


def _lookup(url: str | None, ally_ids: list[str]) -> dict[str, remediation.AllyRecord] | None:
    """The allies as the database sees them, or None without a database (a warning if unreachable)."""
    if not url:
        return None
    import psycopg

    from .. import db

    try:
        with db.connect(url) as conn:
            return remediation.lookup(conn, ally_ids)
    except psycopg.Error:
        click.echo(
            f"allies: warning: the database at {redact(url)} is unreachable; report without it", err=True
        )
        return None


def _audit(url: str, report: triage.Report) -> dict[str, list[dict]]:
    """Per affected ally, the audit rows of its failed attempts (503s have none: the database was down)."""
    from .. import db

    with db.connect(url) as conn:
        return {stats.ally_id: remediation.audited_failures(conn, stats) for stats in report.affected()}


def _as_json(report: triage.Report, records, audits, api_url: str) -> dict:
    data = report.to_dict()
    for entry, stats in zip(data["affected_allies"], report.affected(), strict=True):
        record = records[stats.ally_id] if records is not None else None
        entry["causes"] = remediation.causes(stats, record)
        if record is not None:
            entry.update(exists=record.exists, name=record.name, credentials_set=record.credentials_set)
            entry["credentials_version"] = record.current.number if record.current else None
        if audits is not None:
            entry["audit"] = audits[stats.ally_id]
        if not stats.recovered:
            entry["remediation"] = remediation.plan(stats, record, api_url)
    data["database"] = records is not None
    return data


@functools.cache
def _console():
    return make_console()  # only the report for people needs rich: --json starts faster


def _print_report(report: triage.Report, records, audits, api_url: str) -> None:
    from rich.table import Table

    summary = Table(title="Log triage", show_header=False)
    summary.add_row("files", ", ".join(f"{literal(f['path'])} ({f['lines']} lines)" for f in report.files))
    summary.add_row("lines", f"{report.total_lines} ({report.parsed} parsed, {report.malformed} malformed)")
    if report.window:
        summary.add_row("window", f"{report.window.since or '…'} → {report.window.until or '…'}")
        summary.add_row("requests in window", str(report.in_window))
    summary.add_row("by class", "  ".join(f"{k}: {v}" for k, v in report.status_classes().items()))
    summary.add_row("by status", "  ".join(f"{k}: {v}" for k, v in sorted(report.statuses.items())))
    summary.add_row("failed requests (>= 400)", str(report.failed_requests))
    endpoint = "/allies/<id>/..." if report.all_endpoints else "credentials"
    summary.add_row(f"{endpoint} requests", str(report.credential_requests))
    summary.add_row(f"failed {endpoint} requests", str(report.failed_credential_requests))
    _console().print(summary)
    if report.malformed_samples:
        _say(f"[bold]Lines that could not be parsed[/] (first {len(report.malformed_samples)}):")
        for sample in report.malformed_samples:
            _say(f"  {sample['file']}:{sample['line']}: {sample['text']}", markup=False)
    _print_allies(report, records, audits, api_url)


def _print_allies(report: triage.Report, records, audits, api_url: str) -> None:
    """One block per affected ally: still affected first, each with its cause and its fix."""
    affected = report.affected()
    pending = report.still_affected()
    if not affected:
        _say("No failed credentials requests: no ally affected.")
        return
    _say(
        f"[bold]Affected allies: {len(affected)}[/] ({len(pending)} still affected, "
        f"{len(affected) - len(pending)} recovered by a later successful request)"
    )
    for stats in pending:
        record = records[stats.ally_id] if records is not None else None
        known = f" — {_describe_record(record, stats)}" if record is not None else ""
        _say(f"\n[bold red]AFFECTED[/] {literal(stats.ally_id)}{known}")
        _say(
            f"  {stats.failures} failed of {stats.requests}: "
            + " ".join(f"{k}×{v}" for k, v in sorted(stats.statuses.items()))
            + " · "
            + " ".join(f"{k}×{v}" for k, v in sorted(stats.methods.items()))
            + f" · {stats.first_failure:%Y-%m-%d %H:%M:%S} → {stats.last_failure:%Y-%m-%d %H:%M:%S} UTC"
            + f" · from {', '.join(sorted(stats.clients))}",
            markup=False,
        )
        _say(f"  likely cause: {'; '.join(remediation.causes(stats, record))}", markup=False)
        if audits is not None:
            rows = audits[stats.ally_id]
            found = (
                "; ".join(f"{r['http_status']} {r['outcome']}: {r['detail']}" for r in rows) or "no audit row"
            )
            _say(f"  audit: {found}", markup=False)
        for step in remediation.plan(stats, record, api_url):
            _say(f"  {step}", markup=False)
    recovered = [stats.ally_id for stats in affected if stats.recovered]
    if recovered:
        listed = ", ".join(map(literal, recovered[:RECOVERED_SHOWN]))
        listed += ", …" if len(recovered) > RECOVERED_SHOWN else ""
        _say(f"\n[green]Recovered[/] ({len(recovered)}, nothing to do; --json lists them all): {listed}")


def _say(text: str, markup: bool = True) -> None:
    """One line for people. Text with markup interpolates log-derived parts through `shown`; text
    without markup is escaped whole (it quotes the log: ids, clients, lines)."""
    # soft_wrap: long commands stay on one line, so they can be copied as they are.
    _console().print(text if markup else printable(text), markup=markup, highlight=False, soft_wrap=True)


def _describe_record(record: remediation.AllyRecord, stats: triage.AllyStats) -> str:
    if not stats.valid_id:
        return "not a valid ally id"
    if not record.exists:
        return "no store has this id"
    return f"{record.name}, credentials {'set' if record.credentials_set else 'not set'} now"
