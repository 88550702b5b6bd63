"""`allies tags`, `allies store ...` and `allies credentials ...`: outputs, exit codes, no secrets."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME, YOUNG_WOLF, free_port, stored_credentials

from allies import reports
from allies.cli import main


@pytest.fixture
def run(database_url, tmp_path):
    def invoke(*args: str, input: str | None = None, **env: str):
        environment = {"DATABASE_URL": database_url, "ALLIES_HOME": str(tmp_path / "home"), **env}
        return CliRunner().invoke(main, list(args), env=environment, input=input)

    return invoke


def all_commands(group: click.Group, prefix=()):
    """Every command, loading the modules that define them (the `allies` group loads them lazily)."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_listed_command_is_defined_where_the_group_looks_for_it():
    top_level = [path[0] for path, _ in all_commands(main)]
    assert sorted(set(top_level)) == sorted(main.commands) == main.list_commands(click.Context(main))


def test_log_triage_does_not_load_the_database_driver_or_faker(tmp_path):
    log = tmp_path / "a.log"
    log.write_text('10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "GET / HTTP/1.1" 200 12\n')
    script = (
        "import sys; from allies.cli import main\n"
        f"main(['logs', 'triage', {str(log)!r}, '--json'], standalone_mode=False)\n"
        "print(sorted(m for m in ('psycopg', 'faker', 'flask') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("[]")


@pytest.mark.parametrize("path", [p for p, _ in all_commands(main)], ids=" ".join)
def test_every_command_has_help_ending_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    text = result.output.split("Options:")[0]
    assert "Example" in text, f"allies {' '.join(path)} --help has no example"


def test_tags_json_is_the_report_of_the_sql_file(run, conn):
    result = run("tags", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == reports.tag_distribution(conn)
    assert json.loads(run("tags", "--json").stdout) == json.loads(result.stdout)
    assert set(json.loads(result.stdout)[0]) == {"tag", "stores"}


def test_tags_csv_and_table_and_chart(run, conn):
    expected = reports.tag_distribution(conn)
    rows = list(csv.DictReader(io.StringIO(run("tags", "--format", "csv").stdout)))
    assert [(r["tag"], int(r["stores"])) for r in rows] == [(e["tag"], e["stores"]) for e in expected]
    table = run("tags").stdout
    chart = run("tags", "--chart").stdout
    for row in expected:
        assert row["tag"] in table and str(row["stores"]) in table
    assert "█" * 40 in chart and "█" not in table


def test_store_show_hides_credentials(run, client):
    client.post(
        f"/allies/{BARNES}/credentials", json={"username": CASE3_USERNAME, "password": CASE3_PASSWORD}
    )
    result = run("store", "show", BARNES, "--json")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    assert shown["name"] == "Barnes Inc" and shown["credentials"]["set"] is True
    assert shown["credentials"]["set_at"]
    assert "ciphertext" not in result.stdout and CASE3_PASSWORD not in result.stdout
    human = run("store", "show", BARNES).stdout
    assert "set (since" in human and "ciphertext" not in human


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("store", "show", "no pe"), 2, "allies: malformed ally id: it contains U+0020"),
        (("store", "show", "nope"), 1, "allies: no store has id nope"),
        (("store", "show", "00000000-0000-4000-8000-000000000000"), 1, "allies: no store has id"),
        (
            ("store", "update", "00000000-0000-4000-8000-000000000000", "--owner", "X", "--yes"),
            1,
            "allies: no store has id",
        ),
        (("store", "update", YOUNG_WOLF), 2, "allies: nothing to change"),
        (
            ("store", "update", YOUNG_WOLF, "--replace-tag", "finanzas"),
            2,
            "allies: --replace-tag takes OLD=NEW",
        ),
        (
            ("store", "update", YOUNG_WOLF, "--owner", "Old-Wolf"),
            2,
            "allies: add --yes to apply without a prompt",
        ),
        (("store", "undo", YOUNG_WOLF), 2, "allies: add --yes"),
        (("credentials", "status", "a\nb"), 2, "allies: malformed ally id: it contains U+000A"),
        (
            ("store", "show", YOUNG_WOLF[:-1]),  # a digit lost in copying: not the same as an unknown id
            1,
            f"allies: no store has id {YOUNG_WOLF[:-1]} (not a well-formed UUID: its groups have 8-4-4-4-11",
        ),
        (
            ("store", "update", YOUNG_WOLF, "--replace-tag", "finanza=educacion", "--yes"),
            2,
            f"allies: store {YOUNG_WOLF} has no tag 'finanza' (its tags: finanzas, movilidad, tecnologia)",
        ),
    ],
)
def test_failures_are_one_line_with_the_documented_exit_code_and_change_nothing(
    run, conn, args, code, message
):
    before = conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall()
    result = run(*args)
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)
    assert conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall() == before


def test_under_json_a_failure_is_also_json_on_stdout(run):
    result = run("store", "show", "no pe", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"error": "malformed ally id: it contains U+0020", "exit_code": 2}
    assert result.stderr == "allies: malformed ally id: it contains U+0020\n"
    unknown = run("store", "show", "nope", "--json")
    assert unknown.exit_code == 1 and json.loads(unknown.stdout)["exit_code"] == 1
    plain = run("store", "show", "nope")
    assert plain.exit_code == 1 and plain.stdout == ""


def test_h_is_help_and_a_bare_allies_prints_help_with_success(run):
    bare, short, long = run(), run("-h"), run("--help")
    assert bare.exit_code == short.exit_code == long.exit_code == 0
    assert "Usage: " in bare.stdout and "Commands:" in bare.stdout
    assert bare.stdout == short.stdout == long.stdout
    sub = run("store", "update", "-h")
    assert sub.exit_code == 0 and "--replace-tag" in sub.stdout


def test_no_color_removes_every_style(database_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url, "ALLIES_HOME": str(tmp_path), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    command = [str(Path(sys.executable).parent / "allies"), "tags"]
    styled = subprocess.run(command, env={**env, "FORCE_COLOR": "1"}, capture_output=True, text=True)
    plain = subprocess.run(
        command, env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"}, capture_output=True, text=True
    )
    assert styled.returncode == plain.returncode == 0
    assert "\x1b[" in styled.stdout  # the test can fail: with styles allowed there are some
    assert "\x1b[" not in plain.stdout and "finanzas" in plain.stdout


def test_database_unreachable_is_exit_1(run):
    result = run("tags", DATABASE_URL=f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres")
    assert result.exit_code == 1
    assert result.stderr.startswith("allies: cannot connect to the database")


def test_store_update_dry_run_then_apply_then_idempotent_then_undo(run, conn):
    before = conn.execute("SELECT data FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]
    args = ("store", "update", YOUNG_WOLF, "--owner", "Old-Wolf", "--replace-tag", "finanzas=educacion")
    dry = run(*args, "--dry-run", "--json")
    assert dry.exit_code == 0
    preview = json.loads(dry.stdout)
    assert preview["dry_run"] is True and preview["changed"] is False and preview["would_change"] is True
    assert {"field": "brand_owner", "before": before["brand_owner"], "after": "Old-Wolf"} in preview[
        "changes"
    ]
    assert preview["after"]["brand_owner"] == "Old-Wolf"
    assert conn.execute("SELECT data FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0] == before

    applied = run(*args, "--yes")
    assert applied.exit_code == 0
    assert f"brand_owner: {before['brand_owner']} -> Old-Wolf" in applied.stdout
    assert "tag1=finanzas, tag2=movilidad, tag3=tecnologia -> tag1=educacion" in applied.stdout

    again = run(*args, "--yes")
    assert again.exit_code == 0 and "already up to date, nothing changed" in again.stdout

    undone = run("store", "undo", YOUNG_WOLF, "--yes", "--json")
    assert undone.exit_code == 0 and json.loads(undone.stdout)["changed"] is True
    assert conn.execute("SELECT data FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0] == before


def test_store_update_of_the_name_keeps_the_owner(run, conn):
    result = run("store", "update", YOUNG_WOLF, "--name", "Old-Wolf", "--yes", "--json")
    assert result.exit_code == 0
    after = json.loads(result.stdout)["after"]
    assert after["name"] == "Old-Wolf" and after["brand_owner"] != "Old-Wolf"


def test_credentials_set_and_status_go_through_the_api(run, served_app, database_url, keyring):
    status = run("credentials", "status", BARNES, "--api-url", served_app, "--json")
    assert status.exit_code == 0 and json.loads(status.stdout) == {
        "ally_id": BARNES,
        "credentials_set": False,
    }
    added = run(
        "credentials", "set", BARNES, "--username", CASE3_USERNAME, "--password-stdin", "--api-url", served_app,
        input=CASE3_PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert added.stdout.strip() == f"credentials added for Barnes Inc ({BARNES})"
    assert CASE3_PASSWORD not in added.stdout + added.stderr
    status = run("credentials", "status", BARNES, ALLIES_URL=served_app)  # the URL from the environment
    assert status.stdout.strip() == f"ally {BARNES}: credentials set"
    with psycopg.connect(database_url) as conn:
        assert stored_credentials(conn, keyring, BARNES) == (CASE3_USERNAME, CASE3_PASSWORD)


def test_credentials_set_prompts_without_echo(run, served_app, database_url, keyring):
    result = run(
        "credentials", "set", BARNES, "--username", "u", "--api-url", served_app, input="s3cr:et}\ns3cr:et}\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "s3cr:et}" not in result.output
    with psycopg.connect(database_url) as conn:
        assert stored_credentials(conn, keyring, BARNES) == ("u", "s3cr:et}")


def test_credentials_errors(run, served_app):
    unknown = "00000000-0000-4000-8000-000000000000"
    assert run("credentials", "status", unknown, "--api-url", served_app).exit_code == 1
    refused = run(
        "credentials",
        "set",
        unknown,
        "--username",
        "u",
        "--password-stdin",
        "--api-url",
        served_app,
        input="p\n",
    )
    assert refused.exit_code == 1
    assert refused.stderr.strip() == f"allies: the API refused (400): unknown ally: no store has id {unknown}"
    empty = run(
        "credentials",
        "set",
        BARNES,
        "--username",
        "u",
        "--password-stdin",
        "--api-url",
        served_app,
        input="\n",
    )
    assert empty.exit_code == 1 and "empty field: password" in empty.stderr
    down = run("credentials", "status", BARNES, "--api-url", f"http://127.0.0.1:{free_port()}")
    assert down.exit_code == 1
    assert down.stderr.startswith("allies: the API at http://127.0.0.1:") and "unreachable" in down.stderr
