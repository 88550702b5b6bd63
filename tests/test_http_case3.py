"""Case 3 deliverables (http/): the curl script, the .http file (run by httpyac, with its checks)
and the Postman collection (run by newman, with its tests), each against the real served app;
the stored credentials decrypt to exactly the case's values."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from conftest import (
    BARNES,
    CASE3_PASSWORD,
    CASE3_USERNAME,
    ROOT,
    TOKENS,
    TOKENS_ENV,
    YOUNG_WOLF,
    allies_env,
    stored_credentials,
)

from allies import credentials

pytestmark = [pytest.mark.served]

HTTP = ROOT / "http"
NOT_SET = {"message": "Ally does not have credentials set!"}
IS_SET = {"message": "Ally has credentials set!"}
ADDED = {"message": "Credentials added", "allyId": BARNES, "allyName": "Barnes Inc"}


def assert_stored_exactly(database_url, keyring) -> None:
    with psycopg.connect(database_url) as conn:
        assert stored_credentials(conn, keyring, BARNES) == (CASE3_USERNAME, CASE3_PASSWORD)


@pytest.mark.parametrize("secured", [False, True], ids=["open", "token"])
def test_the_curl_script_checks_adds_and_verifies(serve, database_url, keyring, secured):
    base = serve(ALLIES_API_TOKENS=TOKENS_ENV) if secured else serve()
    result = subprocess.run(
        [str(HTTP / "add_credentials.sh")],
        env=allies_env(ALLIES_URL=base, **({"ALLIES_TOKEN": TOKENS["ana"]} if secured else {})),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == f"400 {json.dumps(NOT_SET, separators=(',', ':'))}"
    assert lines[3] == f"200 {json.dumps(ADDED, separators=(',', ':'))}"
    assert lines[5] == f"200 {json.dumps(IS_SET, separators=(',', ':'))}"
    assert_stored_exactly(database_url, keyring)


def test_the_curl_script_fails_loudly_when_the_api_refuses(served_app, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM stores WHERE id = %s", (BARNES,))
    result = subprocess.run(
        [str(HTTP / "add_credentials.sh")],
        env=allies_env(ALLIES_URL=served_app),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "GET" in result.stderr and "answered 404, expected 200 400" in result.stderr


# The .http file and the Postman collection are run by the tools people run them with: httpyac
# (the JetBrains format, with its checks) and newman (Postman's runner), from the npm registry.
NODE_TOOLS = {"httpyac": "6", "newman": "6"}


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """The folder of the httpyac and newman executables, installed once into .venv/node."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: httpyac and newman, which run http/, come from the npm registry")
    prefix = ROOT / ".venv" / "node"
    prefix.mkdir(parents=True, exist_ok=True)
    tools = prefix / "node_modules" / ".bin"
    with open(prefix / ".install.lock", "w") as lock:  # pytest-xdist workers install it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((tools / name).exists() for name in NODE_TOOLS):
            packages = [f"{name}@{major}" for name, major in NODE_TOOLS.items()]
            command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *packages]
            subprocess.run(command, check=True, capture_output=True, timeout=600)
    return tools


def httpyac(tools: Path, base: str, *variables: str) -> subprocess.CompletedProcess:
    command = [str(tools / "httpyac"), "send", str(HTTP / "add_credentials.http"), "--all", "-e", "local"]
    command += ["--bail", "--var", f"baseUrl={base}", *(f"{v}" for v in variables)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def newman(tools: Path, base: str, *variables: str) -> subprocess.CompletedProcess:
    command = [str(tools / "newman"), "run", str(HTTP / "allies.postman_collection.json"), "--env-var"]
    command += [f"baseUrl={base}", *variables, "--reporters", "cli", "--color", "off"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("secured", [False, True], ids=["open", "token"])
def test_httpyac_runs_the_http_file_and_its_checks_pass(node_tools, serve, database_url, keyring, secured):
    base = serve(ALLIES_API_TOKENS=TOKENS_ENV) if secured else serve()
    token = ("--var", f"token={TOKENS['ana']}") if secured else ()
    result = httpyac(node_tools, base, *token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 requests processed (3 succeeded)" in result.stdout
    assert_stored_exactly(database_url, keyring)


@pytest.mark.slow
def test_httpyac_fails_when_the_api_refuses(node_tools, served_app_with_tokens):
    result = httpyac(node_tools, served_app_with_tokens)  # no token: 401 at the first request
    assert result.returncode != 0 and "status 401" in result.stdout


@pytest.mark.slow
def test_the_http_file_targets_any_ally_and_api_given_on_the_command_line(node_tools, serve, conn):
    result = httpyac(node_tools, serve(), "--var", f"allyId={YOUNG_WOLF}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert conn.execute(
        f"SELECT {credentials.IS_SET} FROM stores WHERE id = %s", (YOUNG_WOLF,)
    ).fetchone() == (True,)


@pytest.mark.slow
@pytest.mark.parametrize("secured", [False, True], ids=["open", "token"])
def test_newman_runs_the_postman_collection_and_its_tests_pass(
    node_tools, serve, database_url, keyring, secured
):
    collection = json.loads((HTTP / "allies.postman_collection.json").read_text())
    assert {v["key"]: v["value"] for v in collection["variable"]}["token"] == ""  # no secret committed
    base = serve(ALLIES_API_TOKENS=TOKENS_ENV) if secured else serve()
    token = ("--env-var", f"token={TOKENS['ana']}") if secured else ()
    result = newman(node_tools, base, *token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_stored_exactly(database_url, keyring)


@pytest.mark.slow
def test_newman_fails_when_the_api_refuses_and_follows_another_ally(
    node_tools, serve, served_app_with_tokens
):
    refused = newman(node_tools, served_app_with_tokens)
    assert refused.returncode != 0 and "AssertionError" in refused.stdout
    other = newman(node_tools, serve(), "--env-var", f"allyId={YOUNG_WOLF}")
    assert other.returncode == 0, other.stdout + other.stderr


def test_the_curl_script_says_so_when_the_token_is_missing(served_app_with_tokens):
    result = subprocess.run(
        [str(HTTP / "add_credentials.sh")],
        env=allies_env(ALLIES_URL=served_app_with_tokens),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "answered 401, expected 200 400" in result.stderr
