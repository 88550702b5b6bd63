"""The reference part of docs/cli.md, generated from every command's `--help` (the cog way): the
suite fails when the page and the commands differ. Regenerate with `make docs`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from allies.cli import main

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
START = "<!-- cli-reference: generated from --help by `make docs`; do not edit by hand -->"
END = "<!-- cli-reference: end -->"
# Help shows defaults, some read from the environment: generated as a newcomer's shell has them.
RUNNER = CliRunner(env={name: None for name in ("ALLIES_URL", "PORT", "ALLIES_TOKEN", "DATABASE_URL")})


def reference() -> str:
    """`--help` of `allies` and of every command and subcommand, in order."""
    parts: list[str] = []

    def walk(command: click.Command, path: list[str]) -> None:
        result = RUNNER.invoke(main, [*path, "--help"], prog_name="allies", terminal_width=100)
        assert result.exit_code == 0, result.output
        parts.append(f"### `{' '.join(['allies', *path])}`\n")
        parts.append(f"```text\n{result.output.rstrip()}\n```\n")
        if isinstance(command, click.Group):
            context = click.Context(command, info_name=path[-1] if path else "allies")
            for name in command.list_commands(context):
                walk(command.get_command(context, name), [*path, name])

    walk(main, [])
    return "\n".join(parts)


def rendered(page: str) -> str:
    """`page` with its generated region replaced by the current reference."""
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n\n{reference()}\n{END}{tail}"


if __name__ == "__main__":
    current = PAGE.read_text()
    fresh = rendered(current)
    if "--check" in sys.argv:
        sys.exit(0 if fresh == current else f"{PAGE} is stale: run `make docs`")
    PAGE.write_text(fresh)
