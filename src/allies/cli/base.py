"""The `allies` group and what its commands share: settings, database access, errors, output.

Exit codes: 0 ok, 1 the operation failed, 2 usage or input error. Failures print one line on stderr.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict

from .. import db, seed
from ..config import ConfigError, Settings
from ..embedded import EmbeddedError
from ..validation import AllyNotFound, Rejected

EXIT_FAILED = 1
EXIT_USAGE = 2


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
        params = conninfo_to_dict(url)
        if "password" in params:
            params["password"] = "***"  # noqa: S105 - a mask, not a password
        return " ".join(f"{key}={value}" for key, value in params.items())
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class AlliesGroup(click.Group):
    """Turns the library's known failures into one clear line and the documented exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AllyNotFound as exc:
            raise CommandFailed(exc.detail) from None
        except Rejected as exc:
            raise InputError(exc.detail) from None
        except ConfigError as exc:
            raise InputError(str(exc)) from None
        except (EmbeddedError, seed.SeedError) as exc:
            raise CommandFailed(str(exc)) from None
        except psycopg.OperationalError:
            raise CommandFailed(
                "the database is unreachable; is it running? (check DATABASE_URL / DB_PORT)"
            ) from None


def settings() -> Settings:
    return Settings.from_env()


def open_db(ensure_schema: bool = True, url: str | None = None) -> psycopg.Connection:
    """A connection to the configured database (or `url`, already resolved), with the schema in place."""
    url = url or db.database_url(settings())
    try:
        conn = db.connect(url, autocommit=True)
    except psycopg.OperationalError:
        raise CommandFailed(f"cannot connect to the database at {redact(url)}") from None
    if ensure_schema:
        db.ensure_schema(conn)
    return conn


@click.group(cls=AlliesGroup)
@click.version_option(package_name="allies")
def main() -> None:
    """Run and support the allies service: API server, database, and support cases."""


def print_json(value: object) -> None:
    """Machine output: one JSON document on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def json_option(function):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)
