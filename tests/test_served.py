"""The real server (`allies serve`: gunicorn + PostgreSQL): contract over HTTP, no secret at rest."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME

from allies.embedded import bin_dir

pytestmark = [pytest.mark.served]


def call(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


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
