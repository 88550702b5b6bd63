"""The real server (`allies serve`: granian + PostgreSQL): contract over HTTP, no secret at rest."""

from __future__ import annotations

import subprocess

import pytest
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME
from helpers.http import send

from allies.embedded import bin_dir

pytestmark = [pytest.mark.served]


def call(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    answer = send(method, url, body)
    return answer.status, answer.json()


def test_the_served_app_follows_the_contract_and_keeps_secrets_out_of_dump_and_log(
    served_app, settings, database_url
):
    endpoint = f"{served_app}/allies/{BARNES}/credentials"
    assert call("GET", endpoint) == (400, {"message": "Ally does not have credentials set!"})
    body = {"username": CASE3_USERNAME, "password": CASE3_PASSWORD}
    assert call("POST", endpoint, body) == (
        200,
        {"message": "Credentials added", "allyId": BARNES, "allyName": "Barnes Inc"},
    )
    assert call("GET", endpoint) == (200, {"message": "Ally has credentials set!"})

    dump = subprocess.run(
        [
            str(bin_dir() / "pg_dump"),
            "--data-only",
            "--table=stores",
            "--table=credential_audit",
            database_url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert BARNES in dump and "AES-256-GCM" in dump
    assert CASE3_PASSWORD not in dump and CASE3_USERNAME not in dump

    log = settings.log_file.read_text()
    assert log.count(f"/allies/{BARNES}/credentials HTTP/1.1") == 3
    assert CASE3_PASSWORD not in log and CASE3_USERNAME not in log


# The server copies its process environment into every request's WSGI environ; a probe app served
# the way allies is shows what a request holds.
PROBE_SERVER = """
import json, os, sys
from allies.web import server

def probe(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(sorted(environ)).encode()]

server.worker_app = lambda settings: probe
server.run(None, "127.0.0.1", int(sys.argv[1]), workers=1, threads=1)
"""


def test_no_request_environ_holds_the_secret_variables(tmp_path):
    from conftest import allies_env, free_port
    from helpers.http import wait_for_http

    port = free_port()
    secret = ("DATABASE_URL", "ALLIES_ENCRYPTION_KEYS", "ALLIES_API_TOKENS", "PGPASSWORD", "HTTP_PROXY")
    env = allies_env(**dict.fromkeys(secret, "s3cret"))
    process = subprocess.Popen(["python", "-c", PROBE_SERVER, str(port)], env=env, cwd=tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", process=process)
        held = set(send("GET", f"http://127.0.0.1:{port}/").json())
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert {"PATH_INFO", "REMOTE_ADDR", "HTTP_HOST"} <= held
    assert not set(secret) & held  # HTTP_PROXY: nor a variable read as a header never sent
    assert not set(env) & held  # nor any other variable of the process
