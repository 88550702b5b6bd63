"""The docs are executable: every command block of the READMEs and of docs/ (English and Spanish)
runs and its documented output is checked, against a fresh embedded database and a running
`allies serve`; each page from a freshly seeded database, so each page can be followed alone."""

from __future__ import annotations

import os
import subprocess

import cli_reference
import pytest
from conftest import ROOT, allies_env, free_port
from docrunner import SHELL_LANGUAGES, blocks, output_matches, run_command
from helpers.http import wait_for_http

from allies.embedded import bin_dir

RUNBOOKS = ["README.md", "README.es.md"] + sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md") if "```console" in path.read_text()
)
# Every Spanish page has its English pair, with the very same commands.
PAIRS = [(name.replace(".es.md", ".md"), name) for name in RUNBOOKS if name.endswith(".es.md")]


def executable_blocks(name: str):
    """The blocks this suite runs: not skipped, and not reserved for another runner (make docker-test)."""
    return [
        b
        for b in blocks((ROOT / name).read_text())
        if b.language == "console" and not b.skip_reason and not b.run_by
    ]


def documented_commands(name: str) -> list[str]:
    return [
        c.text for b in blocks((ROOT / name).read_text()) if b.language == "console" for c in b.commands()
    ]


@pytest.mark.parametrize("name", RUNBOOKS)
def test_every_shell_block_is_run_or_says_why_not(name):
    for block in blocks((ROOT / name).read_text()):
        assert block.language not in SHELL_LANGUAGES, (
            f"{name}:{block.line}: write commands as a `console` block (`$ ` prompts) so they are tested"
        )
        if block.language == "console" and not block.skip_reason:
            assert block.run_by in (None, "docker-test"), (
                f"{name}:{block.line}: unknown runner {block.run_by}"
            )
            assert block.commands(), f"{name}:{block.line}: a console block without `$ ` commands"


@pytest.mark.parametrize(("english", "spanish"), PAIRS)
def test_both_languages_document_identical_commands(english, spanish):
    assert documented_commands(english) == documented_commands(spanish)


def test_every_english_runbook_page_has_its_spanish_pair():
    pages = {str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "runbook").glob("*.md")}
    assert pages and all(
        page.replace(".md", ".es.md") in pages for page in pages if not page.endswith(".es.md")
    )


def test_the_cli_reference_is_what_the_commands_print():
    page = cli_reference.PAGE.read_text()
    assert cli_reference.rendered(page) == page, "docs/cli.md is stale: run `make docs`"


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory):
    """What `make run` gives a newcomer: the embedded database, seeded, and the API served."""
    home = tmp_path_factory.mktemp("docs-home")
    api_port, db_port = free_port(), free_port()
    env = allies_env(
        ALLIES_HOME=str(home),
        DB_PORT=str(db_port),
        ALLIES_LOG_FILE=str(home / "server.log"),
    )
    # Like a newcomer without a system psql, fall back on the one shipped with the embedded server.
    env["PATH"] += os.pathsep + str(bin_dir())
    subprocess.run(["allies", "db", "seed", "--if-empty"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        ["allies", "serve", "--port", str(api_port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{api_port}/health", process=server)
        yield {"env": env, "api_port": api_port, "db_port": db_port}
    finally:
        server.terminate()
        server.wait(timeout=20)
        subprocess.run(["allies", "db", "stop"], env=env, check=True, capture_output=True)


def localize(command: str, stack: dict) -> str:
    """Point the documented default ports at this test's server and database."""
    return (
        command.replace("127.0.0.1:4000", f"127.0.0.1:{stack['api_port']}")
        .replace("localhost:4000", f"localhost:{stack['api_port']}")
        .replace("127.0.0.1:5432", f"127.0.0.1:{stack['db_port']}")
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNBOOKS)
def test_runbook_commands_print_what_they_document(name, live_stack, tmp_path):
    env = dict(live_stack["env"], ALLIES_URL=f"http://127.0.0.1:{live_stack['api_port']}")
    reset = ["allies", "db", "reset", "--yes"]
    subprocess.run(reset, env=env, check=True, capture_output=True)
    for block in executable_blocks(name):
        for command in block.commands():
            code, output = run_command(localize(command.text, live_stack), ROOT, env)
            where = f"{name}:{block.line}: $ {command.text}"
            assert code == command.expected_exit, f"{where}\nexit {code}\n" + "\n".join(output)
            expected = [localize(line, live_stack) for line in command.expected]
            assert output_matches(expected, output), (
                f"{where}\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + "\n".join(output)
            )
