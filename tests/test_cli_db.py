"""`allies db ...` and `allies serve` start-up errors: exit codes 0/1/2 and one clear line."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from click.testing import CliRunner
from conftest import allies_env, free_port

from allies.cli import main


@pytest.fixture
def run(database_url, tmp_path):
    def invoke(*args: str, **env: str):
        environment = {"DATABASE_URL": database_url, "ALLIES_HOME": str(tmp_path / "home"), **env}
        return CliRunner().invoke(main, list(args), env=environment)

    return invoke


def store_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM stores").fetchone()[0]


def test_seed_if_empty_leaves_a_seeded_database_alone(run, database_url):
    result = run("db", "seed", "--if-empty")
    assert result.exit_code == 0
    assert "stores already holds 300 rows; not seeding" in result.stderr
    assert store_count(database_url) == 300


def test_seed_refuses_a_seeded_database_with_exit_1(run, database_url):
    result = run("db", "seed")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "allies: stores already holds 300 rows; seeding never overwrites data "
        "(start over with `allies db reset --yes`)"
    ]
    assert store_count(database_url) == 300


def test_reset_needs_yes(run, database_url):
    result = run("db", "reset")
    assert result.exit_code == 2
    assert "add --yes to confirm" in result.stderr
    assert store_count(database_url) == 300


def test_reset_with_yes_reseeds(run, database_url):
    result = run("db", "reset", "--yes", "--count", "5")
    assert result.exit_code == 0, result.stderr
    assert store_count(database_url) == 5


def test_seed_count_below_two_is_a_usage_error(run):
    assert run("db", "seed", "--count", "1").exit_code == 2


def test_url_prints_database_url(run, database_url):
    result = run("db", "url")
    assert result.exit_code == 0
    assert result.stdout.strip() == database_url


def test_unreachable_database_is_one_line_exit_1_without_the_password(run):
    url = f"postgresql://postgres:hunter2secret@127.0.0.1:{free_port()}/postgres"
    result = run("db", "seed", DATABASE_URL=url)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("allies: cannot connect to the database at")
    assert "hunter2secret" not in result.stderr


def test_malformed_db_port_is_a_usage_error(run):
    result = run("db", "url", DATABASE_URL="", DB_PORT="abc")
    assert result.exit_code == 2
    assert result.stderr.strip() == "allies: DB_PORT must be a whole number, got 'abc'"


def test_serve_refuses_malformed_keys_before_listening(run):
    result = run("serve", "--port", str(free_port()), ALLIES_ENCRYPTION_KEYS="k1:nope!")
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("ALLIES_ENCRYPTION_KEYS: key 'k1' is not valid base64")


def test_psql_opens_on_the_database(database_url, tmp_path):
    result = subprocess.run(
        ["allies", "db", "psql", "-tA", "-c", "SELECT count(*) FROM stores"],
        env=allies_env(DATABASE_URL=database_url, ALLIES_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "300"
