"""`allies serve` and `allies db ...`: run the service and manage its database."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace

import click

from .. import auth, db, keys, seed
from ..config import DEFAULT_API_PORT
from ..embedded import EmbeddedError, bin_dir, port_is_free
from ..keyfile import create_local_key, generates_a_key, load_keyring
from .base import CommandFailed, InputError, main, open_db, redact, settings

# -- serve ---------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_API_PORT, show_default=True, envvar="PORT", help="Port (env PORT).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Worker processes [default: CPUs].")
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="Threads per worker [default: 2, measured best here].",
)
@click.option("--dev", is_flag=True, help="Flask's reloading development server instead.")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Allow a non-loopback address without ALLIES_API_TOKENS (unsafe).",
)
def serve(
    host: str, port: int, workers: int | None, threads: int | None, dev: bool, insecure_no_auth: bool
) -> None:
    """Serve the API (granian), starting the embedded database if needed.

    \b
    Example:
        allies serve --port 4000
    """
    from ..web import server

    config = settings()
    tokens = config.api_tokens
    if not tokens and not auth.is_loopback(host) and not insecure_no_auth:
        raise InputError(
            f"refusing to serve on {host} without authentication: set ALLIES_API_TOKENS "
            "(or ALLIES_API_TOKENS_FILE), or pass --insecure-no-auth"
        )
    if not port_is_free(port, host):
        raise CommandFailed(
            f"port {port} on {host} is already in use (another allies serve or make run?); "
            f"choose another with --port, e.g. PORT={port + 1} make run"
        )
    url = db.database_url(config)  # starts the embedded server when it is the one used
    with open_db(url=url) as conn:
        click.echo(f"allies: database ready, {seed.count_stores(conn)} stores", err=True)
        # One key ring per database: checked before a key is made, and before serving.
        if generates_a_key(config):
            keys.refuse_a_new_key(conn)
        if made := create_local_key(config):
            click.echo(
                f"allies: generated a new encryption key in {made} (mode 0600); back it up, "
                "without it stored credentials cannot be decrypted",
                err=True,
            )
        keyring = load_keyring(config)
        keys.enforce(conn, keyring)
    # What the app needs, resolved once here, before forking: the workers start nothing.
    resolved = replace(config, database_url=url, keyring=keyring)
    access = f"tokens of {', '.join(sorted(tokens))}" if tokens else "no authentication"
    click.echo(f"allies: serving on http://{host}:{port} ({access})", err=True)
    click.echo(f"allies: the support console is at http://{host}:{port}/console/", err=True)
    try:
        if dev:
            server.run_dev(resolved, host, port)
        else:
            server.run(
                resolved,
                host,
                port,
                workers or server.default_workers(),
                threads or server.THREADS_PER_WORKER,
            )
    finally:
        if config.embedded:  # it outlives the API: say so, and how to stop it
            port = db.embedded_server(config).port
            click.echo(
                f"allies: the embedded PostgreSQL keeps running on 127.0.0.1:{port} with its data; "
                "stop it with `allies db stop` (or `.venv/bin/allies db stop`)",
                err=True,
            )


# -- db ------------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """The database: embedded PostgreSQL by default, DATABASE_URL when set."""


@db_group.command("seed")
@click.option("--count", default=seed.DEFAULT_COUNT, show_default=True, type=click.IntRange(2))
@click.option("--if-empty", is_flag=True, help="Do nothing (exit 0) when stores has rows.")
def db_seed(count: int, if_empty: bool) -> None:
    """Fill the empty stores table with generated stores (same data every time).

    Never overwrites: a table with rows is refused (exit 1) unless --if-empty.

    \b
    Example:
        allies db seed --count 1000000
    """
    from rich.progress import Progress

    with open_db() as conn:
        existing = seed.count_stores(conn)
        if existing and if_empty:
            click.echo(f"allies: stores already holds {existing} rows; not seeding", err=True)
            return
        with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("seeding stores", total=count)
            written = seed.seed_stores(conn, count, lambda n: bar.advance(task, n))
    click.echo(f"allies: seeded {written} stores", err=True)


@db_group.command("reset")
@click.option("--yes", is_flag=True, help="Confirm: every store and audit row is deleted.")
@click.option("--count", default=seed.DEFAULT_COUNT, show_default=True, type=click.IntRange(0))
def db_reset(yes: bool, count: int) -> None:
    """Delete all stores, their credentials versions and audit rows, then seed COUNT generated stores
    again (0: leave empty).

    \b
    Example:
        allies db reset --yes
    """
    if not yes:
        raise InputError("db reset deletes every store; add --yes to confirm")
    with open_db() as conn:
        seed.reset_stores(conn)
        written = seed.seed_stores(conn, count) if count else 0
    click.echo(f"allies: database reset, {written} stores seeded", err=True)


@db_group.command("url")
def db_url() -> None:
    """Print the database URL (starting the embedded server if needed).

    \b
    Example:
        psql "$(allies db url)"
    """
    click.echo(db.database_url(settings(), for_people=True))


@db_group.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def db_psql(psql_args: tuple[str, ...]) -> None:
    """Open psql on the database; extra arguments go to psql.

    With the embedded server, its own psql (the same version: an older system psql cannot run
    some meta-commands, such as \\l); with DATABASE_URL, the psql on PATH.

    \b
    Example:
        allies db psql -c 'SELECT count(*) FROM stores'
    """
    _exec_client("psql", psql_args)


@db_group.command("dump", context_settings={"ignore_unknown_options": True})
@click.argument("dump_args", nargs=-1, type=click.UNPROCESSED)
def db_dump(dump_args: tuple[str, ...]) -> None:
    """Run pg_dump on the database; extra arguments go to pg_dump (a backup: keep the key with it).

    With the embedded server, its own pg_dump (pg_dump refuses a server newer than itself).

    \b
    Example:
        allies db dump --format custom --file allies.dump
    """
    _exec_client("pg_dump", dump_args)


def _exec_client(program: str, args: tuple[str, ...]) -> None:
    """Replace this process with a PostgreSQL client on the configured database."""
    config = settings()
    url = db.database_url(config, for_people=True)
    bundled = _bundled(program)
    found = bundled if config.embedded and bundled else shutil.which(program) or bundled
    if found is None:
        raise CommandFailed(f"{program} is not installed (Debian/Ubuntu: apt-get install postgresql-client)")
    os.execv(found, [found, url, *args] if program == "psql" else [found, *args, url])


def _bundled(program: str) -> str | None:
    try:
        candidate = bin_dir() / program
    except EmbeddedError:
        return None
    return str(candidate) if candidate.exists() else None


@db_group.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL (no-op when DATABASE_URL is set or it already runs).

    \b
    Example:
        DB_PORT=5433 allies db start
    """
    config = settings()
    if not config.embedded:
        click.echo("allies: DATABASE_URL is set; the embedded server is not used", err=True)
        return
    server = db.embedded_server(config)
    started = server.start()
    state = "started" if started else "already running"
    click.echo(f"allies: embedded PostgreSQL {state} at {redact(server.url)}", err=True)


@db_group.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL.

    \b
    Example:
        allies db stop
    """
    stopped = db.embedded_server(settings()).stop()
    click.echo(f"allies: embedded PostgreSQL {'stopped' if stopped else 'was not running'}", err=True)
