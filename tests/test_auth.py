"""Bearer tokens: who may write, 401 for everyone else, the actor in the audit trail, serve's guard."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner
from conftest import (
    BARNES,
    CASE3_PASSWORD,
    CASE3_USERNAME,
    TOKENS,
    TOKENS_ENV,
    allies_env,
    free_port,
    make_app,
)
from helpers.http import wait_for_http

from allies import auth
from allies.cli import main
from allies.failures import ConfigError
from allies.ratelimit import Limit
from allies.web.services import services

ANA = {"Authorization": f"Bearer {TOKENS['ana']}"}
BODY = {"username": CASE3_USERNAME, "password": CASE3_PASSWORD}


@pytest.fixture
def secured(settings):
    app = make_app(settings.__class__(**{**settings.__dict__, "api_tokens": TOKENS}))
    yield app.test_client()
    services(app).close()


def audit_rows(conn):
    return conn.execute(
        "SELECT actor, ally_id, outcome, http_status FROM credential_audit ORDER BY id"
    ).fetchall()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKENS["ana"]},
        {"Authorization": "Basic x"},
    ],
    ids=["missing", "wrong", "no scheme", "basic"],
)
def test_without_the_right_token_every_allies_request_is_401(secured, conn, headers):
    for response in (
        secured.get(f"/allies/{BARNES}/credentials", headers=headers),
        secured.post(f"/allies/{BARNES}/credentials", json=BODY, headers=headers),
    ):
        assert response.status_code == 401
        assert response.get_json() == {
            "message": "Authentication required",
            "detail": "send Authorization: Bearer <token>",
        }
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="allies"'
        assert response.headers["Cache-Control"] == "no-store"
    assert audit_rows(conn) == [("anonymous", BARNES, "unauthorized", 401)]  # the write attempt
    assert conn.execute("SELECT data->'credentials' FROM stores WHERE id = %s", (BARNES,)).fetchone() == (
        None,
    )


def test_the_right_token_names_the_actor_in_the_audit_trail(secured, conn):
    assert secured.get(f"/allies/{BARNES}/credentials", headers=ANA).status_code == 400
    response = secured.post(f"/allies/{BARNES}/credentials", json=BODY, headers=ANA)
    assert response.status_code == 200
    luis = {"Authorization": f"Bearer {TOKENS['luis']}"}
    secured.post("/allies/not-an-id/credentials", json=BODY, headers=luis)
    assert audit_rows(conn) == [("ana", BARNES, "success", 200), ("luis", "not-an-id", "rejected", 400)]


def test_health_needs_no_token(secured):
    assert secured.get("/health").status_code == 200


def test_tokens_never_reach_the_log(secured, settings):
    secured.post(f"/allies/{BARNES}/credentials", json=BODY, headers=ANA)
    secured.get(f"/allies/{BARNES}/credentials", headers={"Authorization": "Bearer wrong-token-0123456789"})
    log = settings.log_file.read_text()
    assert TOKENS["ana"] not in log and "wrong-token" not in log and log.count("\n") == 2


def test_identify_compares_every_token():
    assert auth.identify(TOKENS, f"Bearer {TOKENS['luis']}") == "luis"
    assert auth.identify(TOKENS, f"bearer  {TOKENS['ana']}") == "ana"
    assert auth.identify(TOKENS, f"Bearer {TOKENS['ana']}x") is None
    assert auth.identify(TOKENS, None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no tokens found"),
        ("ana", "NAME:TOKEN"),
        ("ana:short", r"16\+ characters"),
        ("ana:0123456789abcdef0,ana:0123456789abcdef1", "appears twice"),
        ("bad name:0123456789abcdef0", "NAME:TOKEN"),
    ],
)
def test_malformed_tokens_are_refused_naming_the_variable(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        auth.parse_tokens(text, "ALLIES_API_TOKENS")
    assert str(info.value).startswith("ALLIES_API_TOKENS")


def test_serve_refuses_a_public_address_without_tokens(database_url, tmp_path):
    result = CliRunner().invoke(
        main,
        ["serve", "--host", "0.0.0.0", "--port", str(free_port())],  # noqa: S104 - the refused case
        env={"DATABASE_URL": database_url, "ALLIES_HOME": str(tmp_path), "ALLIES_API_TOKENS": ""},
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "allies: refusing to serve on 0.0.0.0 without authentication: set ALLIES_API_TOKENS "
        "(or ALLIES_API_TOKENS_FILE), or pass --insecure-no-auth"
    )


@pytest.mark.parametrize("extra", [["--insecure-no-auth"], []], ids=["insecure flag", "tokens"])
def test_serve_on_a_public_address_with_tokens_or_the_explicit_flag(database_url, tmp_path, extra):
    port = free_port()
    env = allies_env(
        DATABASE_URL=database_url, ALLIES_HOME=str(tmp_path), ALLIES_LOG_FILE=str(tmp_path / "s.log")
    )
    if not extra:
        env["ALLIES_API_TOKENS"] = TOKENS_ENV
    process = subprocess.Popen(
        ["allies", "serve", "--host", "0.0.0.0", "--port", str(port), "--workers", "1", *extra],  # noqa: S104
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process=process)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_cli_sends_the_token_from_the_environment(served_app_with_tokens, tmp_path):
    args = [
        "credentials",
        "set",
        BARNES,
        "--username",
        "u",
        "--password-stdin",
        "--api-url",
        served_app_with_tokens,
    ]
    refused = CliRunner().invoke(main, args, input="p\n", env={"ALLIES_TOKEN": ""})
    assert refused.exit_code == 1 and "the API refused (401)" in refused.stderr
    accepted = CliRunner().invoke(main, args, input="p\n", env={"ALLIES_TOKEN": TOKENS["ana"]})
    assert accepted.exit_code == 0, accepted.stderr
    status = CliRunner().invoke(
        main, ["credentials", "status", BARNES, "--api-url", served_app_with_tokens, "--json"],
        env={"ALLIES_TOKEN": TOKENS["luis"]},
    )  # fmt: skip
    assert json.loads(status.stdout) == {"ally_id": BARNES, "credentials_set": True}


def test_write_rate_limit_answers_429_with_retry_after_and_audits(settings, conn):
    app = make_app(
        settings.__class__(**{**settings.__dict__, "write_rate_limit": Limit.parse("3/minute", "test")})
    )
    client = app.test_client()
    try:
        statuses = [client.post(f"/allies/{BARNES}/credentials", json=BODY).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = client.post(f"/allies/{BARNES}/credentials", json=BODY)
        assert limited.get_json() == {
            "message": "Too many requests",
            "detail": "the limit is 3 per minute per client",
        }
        assert 1 <= int(limited.headers["Retry-After"]) <= 20
        other = client.post(
            f"/allies/{BARNES}/credentials", json=BODY, environ_base={"REMOTE_ADDR": "10.9.9.9"}
        )
        assert other.status_code == 200  # per client
        assert client.get(f"/allies/{BARNES}/credentials").status_code == 200  # reads are not limited
    finally:
        services(app).close()
    outcomes = [row[2] for row in audit_rows(conn)]
    assert outcomes.count("rate_limited") == 3 and outcomes.count("success") == 4
