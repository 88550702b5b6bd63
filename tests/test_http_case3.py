"""Case 3 deliverables (http/): the curl script, the .http file and the Postman collection, each
sent to the real served app; the stored credentials decrypt to exactly the case's values."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request

import psycopg
import pytest
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME, ROOT, TOKENS, TOKENS_ENV, allies_env

from allies import credentials

pytestmark = [pytest.mark.served]

HTTP = ROOT / "http"
NOT_SET = {"message": "Ally does not have credentials set!"}
IS_SET = {"message": "Ally has credentials set!"}
ADDED = {"message": "Credentials added", "allyId": BARNES, "allyName": "Barnes Inc"}


def send(method: str, url: str, headers: dict[str, str], body: str | None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body.encode() if body else None, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def assert_stored_exactly(database_url, keyring) -> None:
    with psycopg.connect(database_url) as conn:
        assert credentials.read_credentials(conn, keyring, BARNES) == (CASE3_USERNAME, CASE3_PASSWORD)


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


def parse_http_file(
    text: str, base_url: str, dotenv: dict[str, str]
) -> list[tuple[str, str, dict[str, str], str | None]]:
    """The requests of a REST Client / JetBrains .http file, with its @variables (and $dotenv) resolved."""
    variables = dict(re.findall(r"^@(\w+)\s*=\s*(.*?)\s*$", text, flags=re.M))
    variables["baseUrl"] = base_url
    for name, value in variables.items():
        variables[name] = re.sub(r"\{\{\$dotenv (\w+)\}\}", lambda m: dotenv.get(m[1], ""), value)
    requests = []
    for chunk in text.split("###")[1:]:
        lines = [line for line in chunk.splitlines()[1:] if not line.startswith("#")]
        while lines and not lines[0].strip():
            lines.pop(0)
        method, url = lines[0].split()[:2]
        headers, index = {}, 1
        resolve = lambda s: re.sub(r"\{\{(\w+)\}\}", lambda m: variables[m[1]], s)  # noqa: E731
        while index < len(lines) and lines[index].strip():
            key, value = lines[index].split(":", 1)
            headers[key.strip()] = resolve(value.strip())
            index += 1
        body = "\n".join(lines[index:]).strip() or None
        requests.append((method, resolve(url), headers, body))
    return requests


@pytest.mark.parametrize("secured", [False, True], ids=["open", "token"])
def test_the_http_file_sends_check_add_verify(serve, database_url, keyring, secured):
    base = serve(ALLIES_API_TOKENS=TOKENS_ENV) if secured else serve()
    dotenv = {"ALLIES_TOKEN": TOKENS["ana"]} if secured else {}
    requests = parse_http_file((HTTP / "add_credentials.http").read_text(), base, dotenv)
    assert [r[0] for r in requests] == ["GET", "POST", "GET"]
    assert json.loads(requests[1][3]) == {"username": CASE3_USERNAME, "password": CASE3_PASSWORD}
    replies = [send(*request) for request in requests]
    assert replies == [(400, NOT_SET), (200, ADDED), (200, IS_SET)]
    assert_stored_exactly(database_url, keyring)


@pytest.mark.parametrize("secured", [False, True], ids=["open", "token"])
def test_the_postman_collection_sends_check_add_verify(serve, database_url, keyring, secured):
    collection = json.loads((HTTP / "allies.postman_collection.json").read_text())
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["allyId"] == BARNES and variables["token"] == ""  # no secret committed
    variables["baseUrl"] = serve(ALLIES_API_TOKENS=TOKENS_ENV) if secured else serve()
    if secured:
        variables["token"] = TOKENS["ana"]
    assert collection["auth"] == {
        "type": "bearer",
        "bearer": [{"key": "token", "value": "{{token}}", "type": "string"}],
    }
    replies = []
    for item in collection["item"]:
        request = item["request"]
        url = re.sub(r"\{\{(\w+)\}\}", lambda m: variables[m[1]], request["url"]["raw"])
        headers = {h["key"]: h["value"] for h in request.get("header", [])}
        if variables["token"]:  # what Postman does with the collection's bearer auth
            headers["Authorization"] = f"Bearer {variables['token']}"
        body = request.get("body", {}).get("raw")
        replies.append(send(request["method"], url, headers, body))
        assert any(event["listen"] == "test" for event in item["event"])
    assert replies == [(400, NOT_SET), (200, ADDED), (200, IS_SET)]
    assert_stored_exactly(database_url, keyring)


def test_the_curl_script_says_so_when_the_token_is_missing(served_app_with_tokens):
    result = subprocess.run(
        [str(HTTP / "add_credentials.sh")],
        env=allies_env(ALLIES_URL=served_app_with_tokens),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "answered 401, expected 200 400" in result.stderr
