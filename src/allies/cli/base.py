"""The `allies` group and what its commands share: settings, database access, errors, output.

Exit codes: 0 ok, 1 the operation failed, 2 usage or input error. Failures print one line on stderr;
under `--json` they are also one JSON document on stdout: {"error": ..., "exit_code": ...}.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import click

from ..config import DEFAULT_API_URL, Settings
from ..failures import AlliesError, InputProblem
from ..text import printable
from ..validation import AllyNotFound

if TYPE_CHECKING:
    import psycopg

EXIT_FAILED = 1
EXIT_USAGE = 2


JSON_ERRORS = "allies.json_errors"  # ctx.meta key: a command's --json was given, errors are JSON too


class CommandFailed(click.ClickException):
    """An operation failed: one line on stderr, exit 1."""

    exit_code = EXIT_FAILED

    def show(self, file=None) -> None:
        click.echo(f"allies: {self.format_message()}", err=True)


class InputError(CommandFailed):
    """The input is wrong: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE


def redact(url: str) -> str:
    """The connection URL or conninfo string without its password, for messages."""
    if "://" not in url:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
        if "password" in params:
            params["password"] = "***"  # noqa: S105 - a mask, not a password
        return " ".join(f"{key}={value}" for key, value in params.items())
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# Where each command is defined. Modules are imported when their command runs: the database
# driver and Faker each take a tenth of a second to load, and `allies logs triage` is
# measured against a shell pipeline that starts in milliseconds.
COMMAND_MODULES = {
    "serve": "service",
    "db": "service",
    "tags": "support",
    "store": "support",
    "credentials": "support",
    "logs": "logs",
    "demo": "demo",
    "audit": "admin",
    "keys": "admin",
}


class AlliesGroup(click.Group):
    """Loads each command's module on demand, and turns the library's known failures into one
    clear line and the documented exit code."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[name]}")
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _echo_json_error(ctx, exc)
            raise
        except Exception as exc:
            failure = _known_failure(exc)
            if failure is None:
                raise
            _echo_json_error(ctx, failure)
            raise failure from None


def _echo_json_error(ctx: click.Context, failure: click.ClickException) -> None:
    """Under --json, a script reads the failure from stdout too (the text still goes to stderr)."""
    if ctx.meta.get(JSON_ERRORS):
        print_json({"error": printable(failure.format_message()), "exit_code": failure.exit_code})


def _known_failure(exc: Exception) -> click.ClickException | None:
    """The one-line error for a failure the library reports on purpose; None for a bug."""
    if isinstance(exc, AllyNotFound):  # the input is well formed; what it names does not exist
        return CommandFailed(exc.detail)
    if isinstance(exc, InputProblem):
        return InputError(str(exc))
    if isinstance(exc, AlliesError):
        return CommandFailed(str(exc))
    if _is_database_unreachable(exc):
        return CommandFailed("the database is unreachable; is it running? (check DATABASE_URL / DB_PORT)")
    return None


def _is_database_unreachable(exc: Exception) -> bool:
    """Whether `exc` is the driver's OperationalError. When the driver is not loaded it raised
    nothing, so checking does not load it (it takes a tenth of a second to import)."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


def settings() -> Settings:
    return Settings.from_env()


def open_db(ensure_schema: bool = True, url: str | None = None) -> psycopg.Connection:
    """A connection to the configured database (or `url`, already resolved), with the schema in place."""
    import psycopg

    from .. import db

    url = url or db.database_url(settings())
    try:
        conn = db.connect(url, autocommit=True)
    except psycopg.OperationalError:
        raise CommandFailed(f"cannot connect to the database at {redact(url)}") from None
    if ensure_schema:
        db.ensure_schema(conn)
    return conn


@click.group(
    cls=AlliesGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="allies")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run and support the allies service: API server, database, and support cases."""
    if ctx.invoked_subcommand is None:  # a bare `allies` asks what there is: help, and success
        click.echo(ctx.get_help())


def run() -> None:
    """The `allies` executable: `main`, and a quicker exit."""
    try:
        main()
    finally:
        # On its way out the interpreter's garbage collector walks every object still alive: after
        # a command that loaded rich or the database driver, time for nothing. Frozen objects are
        # skipped. Commands close their own files and connections; the interpreter still flushes
        # stdout and stderr.
        gc.freeze()


def make_console():
    """The console for people's output. NO_COLOR (https://no-color.org) removes every style, not
    only colours: rich alone keeps bold and italic."""
    from rich.console import Console

    return Console(color_system=None) if os.environ.get("NO_COLOR") else Console()


def literal(value: object) -> str:
    """Data (a store's fields, log-derived text) inside rich output: printed as it is, never read
    as markup, its control characters escaped."""
    from rich.markup import escape

    return escape(printable(str(value)))


def print_json(value: object) -> None:
    """Machine output: one JSON document on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


api_url_option = click.option(
    "--api-url",
    envvar="ALLIES_URL",
    default=DEFAULT_API_URL,
    show_default=True,
    help="Base URL of the allies API (env ALLIES_URL).",
)


def json_option(function=None, *, help: str = "Print JSON for scripts."):
    """The `--json` flag (as `as_json`): `@json_option`, or `@json_option(help=...)`."""
    option = click.option("--json", "as_json", is_flag=True, help=help, callback=_remember_json)
    return option(function) if function is not None else option


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_ERRORS] = True
    return value
