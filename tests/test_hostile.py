"""Hostile edges: what attackers and careless operators send gets a clear 4xx or one line, nothing
is forged on a terminal, and nothing they send is stored or run as something else."""

from __future__ import annotations

import gzip
import io
import json
import socket
import time
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from conftest import BARNES, TOKENS, YOUNG_WOLF, make_app
from helpers.logs import common, write
from hypothesis import given, settings
from hypothesis import strategies as st

from allies.cli import main
from allies.ratelimit import Limit
from allies.text import printable
from allies.validation import MAX_ALLY_ID_CHARS, Rejected, parse_ally_id, parse_body
from allies.web.services import services

CREDENTIALS = f"/allies/{BARNES}/credentials"
VALID = b'{"username": "u", "password": "p"}'


# -- HTTP framing, on the real server (granian), over a raw socket --------------------------------


def exchange(base: str, data: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the whole answer (the server closes): status, headers, body."""
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def chunked(payload: bytes, size: int = 8192) -> bytes:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def post_head(extra: str) -> bytes:
    return (
        f"POST {CREDENTIALS} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\n{extra}\r\n"
    ).encode()


def get_head(target: str = "/health", extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n".encode()


# Requests that are HTTP but break a limit or the framing: the app answers, in the contract's shape.
FRAMING = {
    "chunked body over the limit": (post_head("Transfer-Encoding: chunked\r\n") + chunked(VALID + b" " * (1 << 20)), 413, "Request body too large"),
    # the server ends the body at the bad chunk: what came before it is not a whole JSON document
    "invalid chunk size": (post_head("Transfer-Encoding: chunked\r\n") + chunked(VALID[:10])[:-5] + b"zz\r\nabc\r\n0\r\n\r\n", 400, "invalid JSON in the request body"),
    "request line over the limit": (get_head("/" + "a" * 9000), 414, "over 4094 bytes"),
    "header field over the limit": (get_head(extra=f"X-Padding: {'a' * 9000}\r\n"), 431, "over 8190 bytes"),
    "OPTIONS": (f"OPTIONS {CREDENTIALS} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode(), 405, "Method not allowed"),
}  # fmt: skip

# Bytes that are not HTTP/1.1, or a head past the server's bounds: the server's parser refuses them
# before any app code runs, with a bare status and the connection closed (docs/security.md).
BEFORE_THE_APP = {
    "two Content-Length": (post_head("Content-Length: 2\r\nContent-Length: 3\r\n") + b"{}", 400),
    "NUL in the path": (b"GET /allies/\x00/credentials HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "a space in a header name": (get_head(extra="Bad Name: x\r\n"), 400),
    "no request line": (b"HELLO\r\n\r\n", 400),
    "a head over 128 KiB": (get_head(extra="".join(f"X-{i}: {'a' * 8000}\r\n" for i in range(17))), 431),
    "over 100 header fields": (get_head(extra="".join(f"X-{i}: a\r\n" for i in range(100))), 431),
}  # fmt: skip


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory, template_name, server_url):
    """One served app (`allies serve`) for the raw-socket cases, and its access log."""
    from conftest import TEST_KEYS, allies_env, create_database, drop_database, free_port
    from helpers.http import wait_for_http

    name = f"allies_hostile_{free_port()}"
    url = create_database(server_url, name, template_name)
    home = tmp_path_factory.mktemp("hostile")
    port = free_port()
    import subprocess

    env = allies_env(DATABASE_URL=url, ALLIES_HOME=str(home), ALLIES_ENCRYPTION_KEYS=TEST_KEYS,
                     ALLIES_LOG_FILE=str(home / "server.log"))  # fmt: skip
    process = subprocess.Popen(["allies", "serve", "--port", str(port), "--workers", "1"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process=process)
        yield f"http://127.0.0.1:{port}", home / "server.log"
    finally:
        process.terminate()
        process.wait(timeout=20)
        drop_database(server_url, name)


@pytest.mark.parametrize("case", FRAMING)
def test_framing_errors_are_json_in_the_contract_shape_and_logged(hostile_server, case):
    base, log = hostile_server
    data, expected_status, expected_text = FRAMING[case]
    status, headers, body = exchange(base, data)
    assert status == expected_status
    assert headers["content-type"] == "application/json"
    assert expected_text in json.loads(body).get("message", "") + json.loads(body).get("detail", "")
    assert "<html" not in body.decode("latin-1").lower()
    assert f'" {expected_status} ' in log.read_text().splitlines()[-1]  # each is one access log line


@pytest.mark.parametrize("case", BEFORE_THE_APP)
def test_what_is_not_http_is_refused_before_the_app_and_the_server_goes_on(hostile_server, case):
    base, log = hostile_server
    data, expected_status = BEFORE_THE_APP[case]
    lines_before = len(log.read_text().splitlines())
    status, headers, body = exchange(base, data)  # returns only once the server has closed
    assert (status, headers["content-length"], body) == (expected_status, "0", b"")
    assert len(log.read_text().splitlines()) == lines_before  # no app code ran: nothing to log
    assert exchange(base, get_head())[0] == 200


def test_a_body_cut_short_is_never_stored_even_when_what_arrived_is_whole_json(hostile_server):
    base, log = hostile_server
    assert exchange(base, get_head(f"/allies/{YOUNG_WOLF}/credentials"))[0] == 400  # none set
    lines_before = len(log.read_text().splitlines())
    declared = len(VALID) + 5  # the client promises more, sends a whole JSON document, and is gone
    head = post_head(f"Content-Length: {declared}\r\n").replace(BARNES.encode(), YOUNG_WOLF.encode())
    with socket.create_connection((urlsplit(base).hostname, urlsplit(base).port)) as sock:
        sock.sendall(head + VALID)
    deadline = time.monotonic() + 10
    while len(log.read_text().splitlines()) == lines_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert '" 400 ' in log.read_text().splitlines()[-1]
    assert exchange(base, get_head(f"/allies/{YOUNG_WOLF}/credentials"))[0] == 400  # still none


def test_a_small_chunked_body_is_accepted(hostile_server):
    base, _ = hostile_server
    status, _, body = exchange(base, post_head("Transfer-Encoding: chunked\r\n") + chunked(VALID))
    assert status == 200 and json.loads(body)["allyName"] == "Barnes Inc"


def test_no_redirect_location_is_built_from_a_foreign_host(hostile_server):
    base, _ = hostile_server
    request = b"GET /allies/..%2f/credentials HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    status, headers, _ = exchange(base, request)
    assert status == 404 and "location" not in headers


# -- refusals: bounded audit, limit before authentication -----------------------------------------


def test_a_flood_without_a_token_leaves_a_bounded_audit_and_counts_the_rest(settings, conn):
    app = make_app(settings.__class__(**{**settings.__dict__, "api_tokens": TOKENS}))
    client = app.test_client()
    try:
        statuses = {
            client.post(CREDENTIALS, json={"username": "u", "password": "p"}).status_code for _ in range(50)
        }
    finally:
        services(app).close()
    assert statuses == {401}
    rows = conn.execute("SELECT outcome FROM credential_audit").fetchall()
    assert rows == [("unauthorized",)] * 10  # REFUSALS_AUDITED_PER_MINUTE per client address


def test_the_write_limit_applies_before_authentication(settings, conn):
    changed = {"api_tokens": TOKENS, "write_rate_limit": Limit.parse("3/minute", "test")}
    app = make_app(settings.__class__(**{**settings.__dict__, **changed}))
    client = app.test_client()
    try:
        statuses = [client.post(CREDENTIALS, json={}).status_code for _ in range(5)]
    finally:
        services(app).close()
    assert statuses == [401, 401, 401, 429, 429]


def test_sampled_refusals_say_how_many_went_unaudited():
    from allies.ratelimit import Limit, Sampler

    now = [0.0]
    sampler = Sampler(Limit(2, 60), clock=lambda: now[0])
    assert [sampler.admit("a") for _ in range(5)] == [0, 0, None, None, None]
    now[0] = 30.0  # one token back
    assert sampler.admit("a") == 3 and sampler.admit("b") == 0


# -- terminal output: nothing forged, nothing interpreted -----------------------------------------


def test_audit_lines_escape_control_characters_from_request_paths(client, database_url, tmp_path):
    forged = "x\n2026-12-01 21:45:00  luis  " + BARNES + "  credentials.set  success 200\x1b[2J"
    client.post(
        f"/allies/{forged.replace(chr(10), '%0A')}/credentials", json={"username": "u", "password": "p"}
    )
    env = {"DATABASE_URL": database_url, "ALLIES_HOME": str(tmp_path)}
    out = CliRunner().invoke(main, ["audit"], env=env).stdout
    assert len(out.splitlines()) == 1 and "\\x0a2026-12-01" in out and "\x1b" not in out


def test_triage_prints_markup_and_control_characters_from_logs_literally(tmp_path, monkeypatch):
    tricky = "[on_black]hidden[bold]x"
    folder = tmp_path / "d[" / "]x"  # the log's path holds `[/]`, which rich would read as a closing tag
    folder.mkdir(parents=True)
    lines = [
        common(1, "POST", f"/allies/{tricky}/credentials", 500),
        common(2, "POST", "/allies/a%1Bb/credentials", 500),
    ]
    write(folder / "[red]a.log", lines)
    monkeypatch.chdir(tmp_path)  # a short path, shown whole in the summary table
    log = "d[/]x/[red]a.log"
    result = CliRunner().invoke(main, ["logs", "triage", log], env={"DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    assert f"AFFECTED {tricky}" in result.stdout and "d[/]x/[red]a.log" in result.stdout
    assert "\x1b" not in result.stdout and "a\\x1bb" in result.stdout


def test_remediation_commands_quote_ids_from_the_log(tmp_path):
    log = write(tmp_path / "a.log", [common(1, "POST", "/allies/$(reboot)/credentials", 500)])
    out = CliRunner().invoke(main, ["logs", "triage", log], env={"DATABASE_URL": ""}).stdout
    assert "allies credentials set '$(reboot)' --username" in out


# -- log triage edges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    ["31/Feb/2026:10:00:00 -0500", "01/Mar/2026:10:00:00 +9999", "01/Jan/0000:00:00:00 +0000", "32/Jan/2026:10:00:00 +0000"],
)  # fmt: skip
def test_a_line_dated_outside_the_calendar_is_malformed(tmp_path, stamp):
    line = f'10.0.0.1 - - [{stamp}] "POST /allies/{BARNES}/credentials HTTP/1.1" 500 12'
    result = CliRunner().invoke(main, ["logs", "triage", "--json", write(tmp_path / "a.log", [line])], env={"DATABASE_URL": ""})  # fmt: skip
    report = json.loads(result.stdout)
    assert (report["malformed"], report["credential_requests"]) == (1, 0)


def test_a_time_beyond_year_9999_in_utc_is_no_traceback(tmp_path):
    line = f'10.0.0.1 - - [31/Dec/9999:23:59:59 -0100] "POST /allies/{BARNES}/credentials HTTP/1.1" 500 12'
    result = CliRunner().invoke(main, ["logs", "triage", "--json", write(tmp_path / "a.log", [line])], env={"DATABASE_URL": ""})  # fmt: skip
    assert result.exit_code == 0 and json.loads(result.stdout)["credential_requests"] == 0


def test_triage_counts_what_the_app_routes_under_the_canonical_id(tmp_path):
    lines = [
        common(1, "POST", f"/allies/{BARNES.upper()}/credentials", 500),
        common(2, "POST", f"/allies/{BARNES}/credentials/", 404),  # not routed there
        common(3, "POST", f"/allies/{BARNES}/credentials%3Fx", 404),  # not routed there
        common(4, "GET", f"/allies/{BARNES}/credentials?x=1", 200),
    ]
    result = CliRunner().invoke(main, ["logs", "triage", "--json", write(tmp_path / "a.log", lines)], env={"DATABASE_URL": ""})  # fmt: skip
    report = json.loads(result.stdout)
    assert report["credential_requests"] == 2
    assert [(a["ally_id"], a["requests"], a["recovered"]) for a in report["affected_allies"]] == [
        (BARNES, 2, True)
    ]


def test_an_id_with_a_nul_is_reported_invalid_and_the_database_still_answers(tmp_path, database_url):
    log = write(tmp_path / "a.log", [common(1, "POST", "/allies/a%00b/credentials", 500)])
    result = CliRunner().invoke(main, ["logs", "triage", "--json", "--db", database_url, log])
    assert "unreachable" not in result.stderr
    [ally] = json.loads(result.stdout)["affected_allies"]
    assert ally["valid_id"] is False and ally["exists"] is False


def test_a_corrupted_gzip_is_one_line_and_exit_2(tmp_path):
    data = gzip.compress(("\n".join(common(m, "GET", "/", 200) for m in range(20_000)) + "\n").encode())
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(data[: len(data) // 2] + bytes(64) + data[len(data) // 2 + 64 :])
    result = CliRunner().invoke(main, ["logs", "triage", str(broken)], env={"DATABASE_URL": ""})
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"allies: cannot read {broken}")


# -- properties of the request parsing ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=MAX_ALLY_ID_CHARS + 10))
def test_any_ally_id_is_canonical_or_rejected_precisely(raw):
    try:
        canonical = parse_ally_id(raw)
    except Rejected as exc:
        assert exc.detail.startswith("malformed ally id: ") and "\n" not in exc.detail
        return
    assert canonical == printable(canonical) and 0 < len(canonical) <= MAX_ALLY_ID_CHARS
    assert parse_ally_id(canonical) == canonical  # idempotent
    canonical.encode("utf-8")  # storable and sendable


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["username", "user", "password", "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=40)),
    )
)
def test_any_body_gives_sendable_credentials_or_a_detail_without_the_secret(body):
    try:
        username, password = parse_body(body)
    except Rejected as exc:
        for value in body.values():
            if isinstance(value, str) and len(value) > 3:
                assert value not in exc.detail  # a rejected secret is never echoed
        return
    for value in (username, password):
        value.encode("utf-8")
        assert value == printable(value) and value.strip()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10_000),  # which mutation and path
            st.integers(0, 200),  # where the noise goes
            st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\r"), max_size=6),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_any_log_line_is_read_as_the_line_by_line_reference_reads_it(lines_spec):
    """The triage against Python's `re`, line by line (tests/test_triage.py's reference)."""
    import tempfile
    from pathlib import Path

    from helpers.logs import MUTATIONS, PATHS, reference

    from allies import triage

    lines = []
    for n, (choice, where, noise) in enumerate(lines_spec):
        line = common(n % 50, "POST" if choice % 2 else "GET", PATHS[choice % len(PATHS)], 200 + choice % 400)
        line = MUTATIONS[choice % len(MUTATIONS)](line, __import__("random").Random(choice))
        lines.append(line[:where] + noise + line[where:])
    with tempfile.TemporaryDirectory() as folder:
        data = triage.analyze([write(Path(folder) / "fuzz.log", lines)]).to_dict()
    data["failures_per_ally"] = {ally["ally_id"]: ally["failures"] for ally in data["affected_allies"]}
    expected = reference(lines)
    assert {key: data[key] for key in expected} == expected


@pytest.mark.parametrize("source", ["file", "gzip", "stdin"])
def test_a_line_over_the_limit_is_malformed_and_the_lines_around_it_are_read(tmp_path, monkeypatch, source):
    from allies import triage
    from allies.triage import analysis, logparse

    monkeypatch.setattr(analysis, "CHUNK_BYTES", 64 * 1024)  # the long line spans many blocks
    ok = common(1, "POST", f"/allies/{BARNES}/credentials", 500)

    def over(by: int) -> str:
        return common(2, "GET", "/x", 200, extra=' "' + "r" * (logparse.MAX_LINE_BYTES + by) + '"')

    # Far over (never read whole) and just over (may come whole within a block); the last one
    # without its newline.
    lines = [ok] * 300 + [over(200_000)] + [ok] * 300 + [over(100), over(200_000)[:-1]]
    path = tmp_path / "long.log"
    write(path, lines, compress=source == "gzip")
    if source == "stdin":
        stdin = io.TextIOWrapper(open(path, "rb"))  # noqa: SIM115 - closed below
        monkeypatch.setattr("sys.stdin", stdin)
        inputs = ["-"]
    else:
        inputs = [str(path)]
    report = triage.analyze(inputs).to_dict()
    if source == "stdin":
        stdin.close()
    assert (report["total_lines"], report["malformed"], report["credential_requests"]) == (603, 3, 600)
    assert [sample["line"] for sample in report["malformed_samples"]] == [301, 602, 603]
