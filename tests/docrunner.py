"""Runs the command blocks of a Markdown runbook and compares their output with the documented one.

Conventions, kept small on purpose:
- A fenced block whose language is `console` is executed: lines starting with `$ ` are commands
  (a trailing backslash continues a command), the lines after a command are its expected output.
- In expected output, a line `...` matches any number of lines and `...` inside a line matches any
  text. Trailing spaces are ignored.
- A command must exit 0, unless its expected output ends with a line `[exit N]`: then it must exit N.
- A block preceded by `<!-- not-run: REASON -->` is not executed (long-running servers).
- A block preceded by `<!-- run-by: RUNNER -->` is executed only by that runner, not by the test
  suite: `python tests/docrunner.py --run-by docker-test docs/operations.md` (what `make docker-test`
  does).
- Shell blocks in any other language (bash, sh, shell) are refused, so no command goes untested.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.+?)\s*-->")
RUN_BY = re.compile(r"<!--\s*run-by:\s*(?P<runner>[\w-]+)\s*-->")
SHELL_LANGUAGES = {"bash", "sh", "shell", "zsh"}


EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")


@dataclass
class Command:
    text: str
    lines: list[str] = field(default_factory=list)

    @property
    def expected_exit(self) -> int:
        last = next((line for line in reversed(self.lines) if line.strip()), "")
        found = EXIT_LINE.match(last.strip())
        return int(found[1]) if found else 0

    @property
    def expected(self) -> list[str]:
        """The documented output, without the `[exit N]` line."""
        lines = list(self.lines)
        while lines and not lines[-1].strip():
            lines.pop()
        if lines and EXIT_LINE.match(lines[-1].strip()):
            lines.pop()
        return lines


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    body: list[str]
    skip_reason: str | None
    run_by: str | None = None

    def commands(self) -> list[Command]:
        commands: list[Command] = []
        continuing = False
        for line in self.body:
            if continuing:
                commands[-1].text += "\n" + line
            elif line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif commands:
                commands[-1].lines.append(line)
            else:
                raise ValueError(f"block at line {self.line}: output before any `$ ` command")
            continuing = line.endswith("\\") and (continuing or line.startswith("$ "))
        return commands


def blocks(markdown: str) -> list[Block]:
    """Every fenced block of the document, with its skip marker if any."""
    found: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence = opening["fence"]
        start = index
        index += 1
        body = []
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index][len(opening["indent"]) :])
            index += 1
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        marker, runner = NOT_RUN.search(previous), RUN_BY.search(previous)
        language = opening["info"].strip().split(" ")[0]
        found.append(
            Block(
                start + 1,
                language,
                body,
                marker["reason"] if marker else None,
                runner["runner"] if runner else None,
            )
        )
        index += 1
    return found


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line-wise comparison with `...` wildcards (a whole line or inside a line)."""
    expected = [line.rstrip() for line in expected]
    actual = [line.rstrip() for line in actual]
    while expected and not expected[-1]:
        expected.pop()
    while actual and not actual[-1]:
        actual.pop()
    return _match(expected, actual)


def _match(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    head = expected[0]
    if head.strip() == "...":
        return any(_match(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    pattern = ".*".join(re.escape(part) for part in head.split("..."))
    return re.fullmatch(pattern, actual[0]) is not None and _match(expected[1:], actual[1:])


def run_command(command: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> tuple[int, list[str]]:
    """Run one documented command in bash; returns the exit code and stdout+stderr lines."""
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout.splitlines()


def main() -> int:
    """Run the blocks reserved for one runner (`<!-- run-by: RUNNER -->`), in order; stop at the
    first command whose exit code or output differs from the documented one."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("markdown", type=Path)
    parser.add_argument("--run-by", required=True, help="the runner name of the blocks to run")
    parser.add_argument("--host", help="run against this address instead of the documented 127.0.0.1")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per command")
    args = parser.parse_args()

    def localize(text: str) -> str:
        return text.replace("127.0.0.1:", f"{args.host}:") if args.host else text

    selected = [b for b in blocks(args.markdown.read_text()) if b.run_by == args.run_by]
    if not selected:
        print(f"{args.markdown}: no block is marked run-by: {args.run_by}", file=sys.stderr)
        return 1
    root = Path.cwd()  # commands are written to run from the project root, like the test suite runs them
    for block in selected:
        for command in block.commands():
            print(f"$ {localize(command.text)}", flush=True)
            code, output = run_command(localize(command.text), root, dict(os.environ), args.timeout)
            print("\n".join(output), flush=True)
            expected = [localize(line) for line in command.expected]
            if code != command.expected_exit or not output_matches(expected, output):
                print(
                    f"{args.markdown}:{block.line}: exit {code} (documented {command.expected_exit}); "
                    "documented output:\n" + "\n".join(expected),
                    file=sys.stderr,
                )
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
