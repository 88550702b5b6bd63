"""Runs the command blocks of a Markdown runbook and compares their output with the documented one.

Conventions, kept small on purpose:
- A fenced block whose language is `console` is executed: lines starting with `$ ` are commands
  (a trailing backslash continues a command), the lines after a command are its expected output.
- In expected output, a line `...` matches any number of lines and `...` inside a line matches any
  text. Trailing spaces are ignored.
- A command must exit 0, unless its expected output ends with a line `[exit N]`: then it must exit N.
- A block preceded by `<!-- not-run: REASON -->` is not executed (docker, long-running servers).
- Shell blocks in any other language (bash, sh, shell) are refused, so no command goes untested.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.+?)\s*-->")
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
        marker = NOT_RUN.search(previous)
        language = opening["info"].strip().split(" ")[0]
        found.append(Block(start + 1, language, body, marker["reason"] if marker else None))
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
