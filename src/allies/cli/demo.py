"""`allies demo traffic`: the reproducible traffic behind the project's log/example.log."""

from __future__ import annotations

from pathlib import Path

import click

from .. import db
from . import traffic as demo
from .base import main, settings


@main.group("demo")
def demo_group() -> None:
    """Reproducible demonstrations."""


@demo_group.command("traffic")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("log/example.log"),
    show_default=True,
)
@click.option("--seed", "seed_value", default=demo.DEFAULT_SEED, show_default=True)
@click.option("--requests", default=demo.DEFAULT_REQUESTS, show_default=True, type=click.IntRange(1))
def demo_traffic(out: Path, seed_value: int, requests: int) -> None:
    """Write the access log of about three hours of simulated traffic through the real app.

    Runs against a temporary database (created and dropped on the configured server), with a
    simulated clock: the same seed gives the same file, byte for byte. This is how the project's
    log/example.log is made.

    \b
    Example:
        allies demo traffic --out /tmp/example.log
    """
    lines = demo.generate(db.database_url(settings()), out, seed_value, requests)
    click.echo(f"allies: wrote {lines} lines to {out}", err=True)
