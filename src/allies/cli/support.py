"""Support cases 1–3 from the terminal: `allies tags`, `allies store ...`, `allies credentials ...`."""

from __future__ import annotations

import csv
import io
import sys

import click
from rich.table import Table

from .. import reports, stores
from ..text import printable
from ..validation import AllyNotFound, parse_ally_id
from .base import (
    CommandFailed,
    InputError,
    api_url_option,
    json_option,
    literal,
    main,
    make_console,
    open_db,
    print_json,
    settings,
)
from .client import ApiUnreachable, Client

console = make_console()
# -- case 1 --------------------------------------------------------------------------------


@main.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@json_option(help="Same as --format json.")
@click.option("--chart", is_flag=True, help="Draw a bar chart in the terminal.")
def tags(fmt: str, as_json: bool, chart: bool) -> None:
    """Case 1: every tag in use and how many stores use it (runs sql/01_tags_distribution.sql).

    \b
    Example:
        allies tags --format csv > tags.csv
    """
    with open_db() as conn:
        rows = reports.tag_distribution(conn)
    if as_json or fmt == "json":
        print_json(rows)
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["tag", "stores"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        console.print(_tags_table(rows, chart))


def _tags_table(rows: list[dict], chart: bool) -> Table:
    table = Table("tag")
    table.add_column("stores", justify="right")
    widest = max((row["stores"] for row in rows), default=0)
    if chart:
        table.add_column("")
    for row in rows:
        cells = [literal(row["tag"]), str(row["stores"])]
        if chart:
            cells.append("█" * round(40 * row["stores"] / widest) if widest else "")
        table.add_row(*cells)
    return table


# -- case 2 --------------------------------------------------------------------------------


@main.group("store")
def store_group() -> None:
    """Look at a store and change it safely (case 2)."""


@store_group.command("show")
@click.argument("store_id")
@json_option
def store_show(store_id: str, as_json: bool) -> None:
    """Show a store; credentials only as set / not set (and since when), never their content.

    \b
    Example:
        allies store show 0d4f7a40-651d-44fb-8744-04d9b31ef844
    """
    store_id = parse_ally_id(store_id)
    with open_db() as conn:
        data = stores.get_store(conn, store_id)
    if data is None:
        raise AllyNotFound.of(store_id)
    view = stores.public_view(data)
    if as_json:
        print_json({"id": store_id, **view})
        return
    table = Table(show_header=False)
    table.add_row("id", literal(store_id))
    for key, value in view.items():
        table.add_row(literal(key), literal(_describe(key, value)))
    console.print(table)


def _describe(key: str, value) -> str:
    if key == "credentials":
        return f"set (since {value['set_at']})" if value["set"] else "not set"
    if key == "tags" and isinstance(value, dict):
        return ", ".join(f"{slot}={tag}" for slot, tag in sorted(value.items()))
    return str(value)


class TagReplacement(click.ParamType):
    """`OLD=NEW`, as the pair (OLD, NEW), each stripped and not empty."""

    name = "OLD=NEW"

    def convert(self, value, param, ctx) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        old, sep, new = value.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--replace-tag takes OLD=NEW, got {value!r}")  # one line, exit 2
        return old.strip(), new.strip()


@store_group.command("update")
@click.argument("store_id")
@click.option("--owner", help="New brand_owner.")
@click.option("--name", help="New store name.")
@click.option("--replace-tag", "replace_tag", multiple=True, type=TagReplacement(), help="Repeatable.")
@click.option("--reason", help="Why, for the journal (e.g. a ticket) [default: the change itself].")
@click.option("--dry-run", is_flag=True, help="Show the change, write nothing.")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@json_option
def store_update(
    store_id: str,
    owner: str | None,
    name: str | None,
    replace_tag: tuple[tuple[str, str], ...],
    reason: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Change a store's owner, name or tags: one transaction, journaled, concurrency-safe.

    Only the named fields change; credentials and every other key are kept. A tag replaced by
    one the store already has is removed rather than duplicated. Running it twice changes
    nothing the second time. `allies store undo` puts the fields back.

    \b
    Example (case 2):
        allies store update 0d4f7a40-651d-44fb-8744-04d9b31ef844 \\
            --owner Old-Wolf --replace-tag finanzas=educacion --yes
    """
    store_id = parse_ally_id(store_id)
    change = stores.Change(owner=owner, name=name, replace_tags=replace_tag)
    if not change.touched_keys():
        raise InputError("nothing to change: give --owner, --name or --replace-tag")
    reason = (reason or f"allies store update: {change.describe()}")[: stores.MAX_REASON_CHARS]
    with open_db() as conn:
        preview = stores.apply_change(conn, store_id, change, reason=reason, dry_run=True)
        if dry_run or not preview.changes:
            _report(store_id, preview, as_json, note="dry run: nothing was written" if dry_run else None)
            return
        if not yes:
            _print_diff(preview)
            if not sys.stdin.isatty():
                raise InputError("add --yes to apply without a prompt")
            click.confirm("Apply this change?", abort=True)
        outcome = stores.apply_change(conn, store_id, change, reason=reason)
    _report(store_id, outcome, as_json)


@store_group.command("undo")
@click.argument("store_id")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@json_option
def store_undo(store_id: str, yes: bool, as_json: bool) -> None:
    """Put back the fields of the store's latest change (case 2 rollback); journaled too.

    \b
    Example:
        allies store undo 0d4f7a40-651d-44fb-8744-04d9b31ef844 --yes
    """
    store_id = parse_ally_id(store_id)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("add --yes to undo without a prompt")
        click.confirm(f"Undo the latest change of store {store_id}?", abort=True)
    with open_db() as conn:
        outcome = stores.undo_last_change(conn, store_id)
    _report(store_id, outcome, as_json, note=None if outcome.changes else "no journaled change to undo")


def _diff_lines(outcome: stores.Outcome) -> list[str]:
    return [
        printable(f"  {key}: {_describe(key, before)} -> {_describe(key, after)}")
        for key, before, after in outcome.changed_fields()
    ]


def _print_diff(outcome: stores.Outcome) -> None:
    click.echo("\n".join(_diff_lines(outcome)))


def _report(store_id: str, outcome: stores.Outcome, as_json: bool, note: str | None = None) -> None:
    if as_json:
        print_json(
            {
                "id": store_id,
                "changed": bool(outcome.changes) and outcome.applied,
                "dry_run": not outcome.applied,
                "would_change": bool(outcome.changes) and not outcome.applied,
                "changes": [
                    {"field": key, "before": before, "after": after}
                    for key, before, after in outcome.changed_fields()
                ],
                "journal_id": outcome.journal_id,
                "before": outcome.before,
                "after": outcome.after,
            }
        )
        return
    if not outcome.changes:
        click.echo(f"store {store_id}: already up to date, nothing changed")
    else:
        verb = "would change" if not outcome.applied else "changed"
        click.echo(f"store {store_id} {verb}:")
        _print_diff(outcome)
        if outcome.journal_id:
            click.echo(f"journaled as change {outcome.journal_id} (undo: allies store undo {store_id})")
    if note:
        click.echo(note)


# -- case 3 --------------------------------------------------------------------------------


@main.group("credentials")
def credentials_group() -> None:
    """An ally's partner credentials, through the API (validation, encryption and audit there).

    When the API requires a token, it is read from the ALLIES_TOKEN environment variable (never an
    option: options show in the process list and the shell history)."""


def _client(api_url: str) -> Client:
    return Client(api_url, token=settings().api_token)


@credentials_group.command("status")
@click.argument("ally_id")
@api_url_option
@json_option
def credentials_status(ally_id: str, api_url: str, as_json: bool) -> None:
    """Say whether the ally has credentials set (GET /allies/ID/credentials).

    \b
    Example:
        allies credentials status 1f585fc9-4926-468c-a728-eb34d80e9ea1
    """
    ally_id = parse_ally_id(ally_id)
    reply = _call(lambda: _client(api_url).credentials_status(ally_id))
    if reply.status == 404:
        raise CommandFailed(f"no ally has id {ally_id}")
    if reply.status not in (200, 400):
        raise CommandFailed(f"the API answered {reply.status}: {reply.body.get('message')}")
    is_set = reply.status == 200
    if as_json:
        print_json({"ally_id": ally_id, "credentials_set": is_set})
    else:
        click.echo(f"ally {ally_id}: credentials {'set' if is_set else 'not set'}")


@credentials_group.command("set")
@click.argument("ally_id")
@click.option("--username", required=True, help="The partner username.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@api_url_option
@json_option
def credentials_set(ally_id: str, username: str, password_stdin: bool, api_url: str, as_json: bool) -> None:
    """Store an ally's partner credentials (POST /allies/ID/credentials), encrypted by the API.

    The password is never an argument (it would land in the shell history and the process
    list): it is prompted without echo, or read from stdin with --password-stdin.

    \b
    Example:
        printf '%s\\n' "$PARTNER_PASSWORD" | allies credentials set \\
            1f585fc9-4926-468c-a728-eb34d80e9ea1 --username aliado_addi --password-stdin
    """
    ally_id = parse_ally_id(ally_id)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    reply = _call(lambda: _client(api_url).set_credentials(ally_id, username, password))
    if reply.status != 200:
        detail = reply.body.get("detail") or reply.body.get("message")
        raise CommandFailed(f"the API refused ({reply.status}): {detail}")
    if as_json:
        print_json(reply.body)
    else:
        click.echo(f"credentials added for {reply.body['allyName']} ({reply.body['allyId']})")


@credentials_group.command("history")
@click.argument("ally_id")
@api_url_option
@json_option
def credentials_history(ally_id: str, api_url: str, as_json: bool) -> None:
    """List an ally's credentials versions, newest first (GET /allies/ID/credentials/versions):
    version, time, actor, key id, request id, current or destroyed. Never a secret.

    \b
    Example:
        allies credentials history 1f585fc9-4926-468c-a728-eb34d80e9ea1
    """
    ally_id = parse_ally_id(ally_id)
    reply = _call(lambda: _client(api_url).credentials_versions(ally_id))
    _refuse_unless_ok(reply, ally_id)
    if as_json:
        print_json(reply.body)
        return
    table = Table(
        "version", "set at", "actor", "key id", "request id", "state", title=f"ally {literal(ally_id)}"
    )
    for row in reply.body["versions"]:
        state = "current" if row["current"] else "destroyed" if row["destroyed"] else "kept"
        if row["restoredFrom"]:
            state += f" (restored from {row['restoredFrom']})"
        table.add_row(
            str(row["version"]), row["setAt"], literal(row["actor"]), literal(row["keyId"] or ""),
            literal(row["requestId"] or ""), state,
        )  # fmt: skip
    console.print(table)


@credentials_group.command("restore")
@click.argument("ally_id")
@click.option("--version", "version", required=True, type=click.IntRange(1), help="The version to restore.")
@click.option(
    "--if-version",
    type=click.IntRange(1),
    help="Only if the current version is still this one (If-Match): nobody changed it meanwhile.",
)
@api_url_option
@json_option
def credentials_restore(
    ally_id: str, version: int, if_version: int | None, api_url: str, as_json: bool
) -> None:
    """Write an old version's data as a new version (POST /allies/ID/credentials/restore), audited.
    A destroyed version cannot be restored (only the latest ones are kept).

    \b
    Example:
        allies credentials restore 1f585fc9-4926-468c-a728-eb34d80e9ea1 --version 2 --if-version 3
    """
    ally_id = parse_ally_id(ally_id)
    reply = _call(lambda: _client(api_url).restore_credentials(ally_id, version, if_version))
    _refuse_unless_ok(reply, ally_id)
    if as_json:
        print_json(reply.body)
    else:
        click.echo(
            f"version {reply.body['restoredFrom']} restored for {literal(reply.body['allyName'])} "
            f"({reply.body['allyId']}) as version {reply.body['version']}"
        )


def _refuse_unless_ok(reply, ally_id: str) -> None:
    if reply.status == 404 and "detail" not in reply.body:
        raise CommandFailed(f"no ally has id {ally_id}")
    if reply.status != 200:
        detail = reply.body.get("detail") or reply.body.get("message")
        raise CommandFailed(f"the API refused ({reply.status}): {detail}")


def _call(request):
    try:
        return request()
    except ApiUnreachable as exc:
        raise CommandFailed(str(exc)) from None
