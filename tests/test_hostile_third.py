"""Hostile edges, third pass: JSON that RFC 8259 does not have, duplicate keys, canonical ids in
every record, framing of /docs, the console's address without its slash, oversized heads on a
write, forged forwarded addresses, format characters on terminals, unreadable inputs."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import replace

import pytest
from click.testing import CliRunner
from conftest import BARNES, YOUNG_WOLF, make_app
from helpers.logs import write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allies.cli import main
from allies.text import FORMAT_CHARACTERS, printable
from allies.triage import logparse
from allies.web.services import services

CREDENTIALS = f"/allies/{BARNES}/credentials"


def raw_post(client, body: bytes, path: str = CREDENTIALS, environ_base=None, **headers):
    headers = {"Content-Type": "application/json", **headers}
    return client.post(path, data=body, headers=headers, environ_base=environ_base or {})


def audit_rows(conn) -> list[tuple]:
    return conn.execute(
        "SELECT ally_id, outcome, http_status, detail, client_addr FROM credential_audit"
    ).fetchall()


def stored(conn) -> object:
    return conn.execute(
        "SELECT data::jsonb -> 'credentials' FROM stores WHERE id = %s", (BARNES,)
    ).fetchone()[0]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"username": "a", "password": "x", "password": "y"}', "the key 'password' appears twice"),
        (
            b'{"username": "a", "user": "b", "username": "c", "password": "x"}',
            "the key 'username' appears twice",
        ),
        (b'{"username": "a", "password": NaN}', "NaN is not JSON"),
        (b'{"username": "a", "password": Infinity}', "Infinity is not JSON"),
        (b'{"username": "a", "password": -Infinity}', "-Infinity is not JSON"),
        (b'{"username": "a", "password": "x", "n": 1e999999}', "a number out of range"),
    ],
)
def test_what_rfc_8259_does_not_have_is_a_400_that_stores_nothing(client, conn, body, detail):
    answer = raw_post(client, body)
    assert answer.status_code == 400
    assert answer.get_json()["detail"] == f"invalid JSON in the request body: {detail}"
    assert stored(conn) is None
    assert audit_rows(conn)[-1][1:4] == ("rejected", 400, f"invalid JSON in the request body: {detail}")


def test_an_upper_case_uuid_is_recorded_under_its_one_spelling(client, conn):
    upper = BARNES.upper()
    assert (
        raw_post(client, b'{"username": "u", "password": "p"}', f"/allies/{upper}/credentials").status_code
        == 200
    )
    assert raw_post(client, b'{"username": "u"}', f"/allies/{upper}/credentials").status_code == 400
    assert [row[0] for row in audit_rows(conn)] == [BARNES, BARNES]
    versions = conn.execute("SELECT ally_id FROM credential_versions").fetchall()
    assert versions == [(BARNES,)]


def test_no_page_of_the_app_can_be_framed(client):
    for path in ("/docs/", "/openapi.json", CREDENTIALS, "/health"):
        response = client.get(path)
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
    console = client.get("/console/")
    assert console.headers["Content-Security-Policy"].startswith("default-src 'none'")  # its own, whole


def test_the_console_without_its_slash_is_served_without_a_redirect_and_checks_the_host(client):
    answer = client.get("/console")
    assert answer.status_code == 200 and "Location" not in answer.headers
    rebound = client.get("/console", headers={"Host": "evil.example:4880"})
    assert rebound.status_code == 403 and "evil.example" not in rebound.headers.get("Location", "")


@pytest.mark.parametrize(
    ("build", "status", "message"),
    [
        (lambda: {"path": CREDENTIALS, "headers": {"X-Big": "x" * 9000}}, 431, "Request headers too large"),
        (lambda: {"path": CREDENTIALS + "?q=" + "x" * 5000, "headers": {}}, 414, "Request line too long"),
    ],
)
def test_an_oversized_head_on_a_write_is_refused_in_the_contract_shape_and_audited(
    client, conn, build, status, message
):
    request = build()
    answer = client.post(request["path"], data=b'{"username": "u", "password": "p"}',
                         headers={"Content-Type": "application/json", **request["headers"]})  # fmt: skip
    assert answer.status_code == status and answer.get_json()["message"] == message
    assert stored(conn) is None
    assert audit_rows(conn)[-1][:3] == (BARNES, "rejected", status)


@pytest.mark.parametrize(
    "forwarded",
    [
        '10.0.0.66 - - [01/Dec/2026:09:00:00 +0000] "POST /allies/x/credentials HTTP/1.1" 500 1',
        "not an address",
        "10.0.0.66 1.2.3.4",
    ],
)
def test_a_forwarded_address_is_an_address_or_ignored_and_a_request_is_one_log_line(
    settings, conn, forwarded
):
    app = make_app(replace(settings, trusted_proxies=1))
    try:
        client = app.test_client()
        body = b'{"username": "u", "password": "p"}'
        answer = raw_post(
            client, body, environ_base={"REMOTE_ADDR": "127.0.0.9"}, **{"X-Forwarded-For": forwarded}
        )
        assert answer.status_code == 200
        honest = raw_post(
            client, body, environ_base={"REMOTE_ADDR": "127.0.0.9"}, **{"X-Forwarded-For": "10.1.2.3"}
        )
        assert honest.status_code == 200
    finally:
        services(app).close()
    assert [row[4] for row in audit_rows(conn)] == ["127.0.0.9", "10.1.2.3"]
    lines = settings.log_file.read_text().splitlines()
    assert (
        len(lines) == 2 and lines[0].startswith("127.0.0.9 - - [") and lines[1].startswith("10.1.2.3 - - [")
    )
    assert all(
        logparse.analyze_block((line + "\n").encode(), logparse.Window()).parsed == 1 for line in lines
    )


def test_the_access_log_writes_any_address_as_one_field(tmp_path):
    from datetime import UTC, datetime

    from allies.web.accesslog import clf_line

    line = clf_line(
        '1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1\n', datetime(2026, 1, 1, tzinfo=UTC), "GET / HTTP/1.1", 200, 5
    )
    assert "\n" not in line and line.split(" ")[1:3] == ["-", "-"]
    assert logparse.analyze_block((line + "\n").encode(), logparse.Window()).parsed == 1


def test_every_format_character_is_escaped_for_terminals():
    cf = [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"]
    assert all(printable(char) != char for char in cf)
    assert printable("café \u202eevil") == "café \\u202eevil" and printable("\U000e0041") == "\\U000e0041"
    assert printable(printable("x\u2066y")) == printable("x\u2066y")  # idempotent
    assert "\u202e" in FORMAT_CHARACTERS


def test_allies_audit_prints_bidi_controls_from_request_paths_escaped(client, database_url):
    client.post("/allies/abc\u202edef/credentials", json={"username": "u", "password": "p"})
    result = CliRunner().invoke(main, ["audit"], env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert "\u202e" not in result.output and "\\u202e" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/proc/self/mem"], "allies: cannot read /proc/self/mem: Input/output error"),
        (["LOG", "--since", "0001-01-01T00:00+14:00"], "outside the years 1-9999 once in UTC"),
        (["LOG", "--until", "9999-12-31T23:00-14:00"], "outside the years 1-9999 once in UTC"),
    ],
)
def test_unreadable_inputs_and_times_at_the_calendars_edge_are_one_line_and_exit_2(tmp_path, args, message):
    log = write(tmp_path / "a.log", ["garbage"])
    result = CliRunner().invoke(main, ["logs", "triage", *[log if arg == "LOG" else arg for arg in args]])
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        ({"owner": "x" * 15_000}, "the owner is longer than 200 characters"),
        ({"owner": "Old\x1b[31mWolf"}, "the owner contains U+001B"),
        ({"owner": "Old\x00Wolf"}, "the owner contains U+0000"),
        ({"owner": "Old-Wolf", "reason": "ticket\x00 42"}, None),  # a reason is escaped, not refused
    ],
)
def test_the_store_fix_holds_the_clis_rules_whichever_face_sends_it(client, conn, form, detail):
    page = f"/console/allies/{YOUNG_WOLF}/fix"
    token = CSRF.search(client.get(page).get_data(as_text=True))[1]
    before = conn.execute("SELECT data FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]
    answer = client.post(page, data={"csrf_token": token, "step": "apply", **form})
    after = conn.execute("SELECT data FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]
    if detail is None:
        assert answer.status_code == 200 and after["brand_owner"] == "Old-Wolf"
        assert conn.execute("SELECT reason FROM store_changes").fetchone() == ("ticket\\x00 42",)
        return
    assert answer.status_code == 400 and detail in answer.get_data(as_text=True)
    assert after == before
    result = CliRunner().invoke(main, ["store", "update", YOUNG_WOLF, "--owner", form["owner"], "--yes"])
    assert result.exit_code == 2 and detail in result.stderr


@pytest.mark.parametrize(
    "query", ["/console/allies?q=a%00b", "/console/sign-in?next=/console/%0d%0aSet-Cookie:x=1"]
)
def test_nul_in_a_search_and_cr_lf_in_next_are_no_server_error(client, query):
    answer = client.get(query)
    assert answer.status_code in (200, 302, 400), answer.status_code
    assert "Set-Cookie" not in answer.headers.get("Location", "")
    if "q=" in query:
        assert answer.status_code == 400 and "U+0000" in answer.get_data(as_text=True)


def _fix_form(client, path: str, owner: str) -> dict:
    page = client.get(path).get_data(as_text=True)
    token = CSRF.search(page)[1]
    preview = client.post(path, data={"csrf_token": token, "step": "preview", "owner": owner}).get_data(
        as_text=True
    )
    seen = re.search(r'name="seen" value="([^"]*)"', preview)[1]
    return {"csrf_token": token, "step": "apply", "owner": owner, "seen": html.unescape(seen)}


def owner_of(conn) -> str:
    return conn.execute("SELECT data ->> 'brand_owner' FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[
        0
    ]


def test_an_apply_over_a_change_made_since_its_preview_is_refused(client, conn):
    from allies import stores

    path = f"/console/allies/{YOUNG_WOLF}/fix"
    form_a = _fix_form(client, path, "OWNER-A")  # A previews
    stores.apply_change(conn, YOUNG_WOLF, stores.Change(owner="OWNER-B"), reason="B", actor="b")  # B applies
    late = client.post(path, data=form_a)
    assert late.status_code == 409 and "changed since the preview" in late.get_data(as_text=True)
    assert owner_of(conn) == "OWNER-B"
    fresh = client.post(path, data=_fix_form(client, path, "OWNER-A"))  # previewed again: applied
    assert fresh.status_code == 200 and owner_of(conn) == "OWNER-A"


def test_an_undo_undoes_the_change_its_page_showed_or_nothing(client, conn):
    path = f"/console/allies/{YOUNG_WOLF}/fix"
    first = client.post(path, data=_fix_form(client, path, "OWNER-A")).get_data(as_text=True)
    first_id = re.search(r'name="change" value="(\d+)"', first)[1]
    client.post(path, data=_fix_form(client, path, "OWNER-B"))  # a later change, by someone else
    token = CSRF.search(first)[1]
    refused = client.post(
        f"/console/allies/{YOUNG_WOLF}/undo", data={"csrf_token": token, "change": first_id}
    )
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 409 and f"change {first_id} is not the store's latest" in text
    assert owner_of(conn) == "OWNER-B"
    latest = str(int(first_id) + 1)
    undone = client.post(f"/console/allies/{YOUNG_WOLF}/undo", data={"csrf_token": token, "change": latest})
    assert undone.status_code == 200 and owner_of(conn) == "OWNER-A"


def test_a_cookie_copied_before_sign_out_no_longer_signs_in(settings, conn):
    from conftest import TOKENS

    app = make_app(replace(settings, api_tokens=TOKENS))
    try:
        browser, thief = app.test_client(), app.test_client()
        token = CSRF.search(browser.get("/console/sign-in").get_data(as_text=True))[1]
        browser.post("/console/sign-in", data={"csrf_token": token, "token": TOKENS["ana"]})
        copied = browser.get_cookie("allies_console", path="/console").value
        thief.set_cookie("allies_console", copied, path="/console")
        page = f"/console/allies/{YOUNG_WOLF}/fix"
        assert thief.get(page).status_code == 200  # the copy works while ana is signed in
        form = CSRF.search(thief.get(page).get_data(as_text=True))[1]
        browser.post(
            "/console/sign-out",
            data={"csrf_token": CSRF.search(browser.get("/console/").get_data(as_text=True))[1]},
        )
        assert thief.get(page).status_code == 302  # sent to sign in
        before = owner_of(conn)
        replayed = thief.post(page, data={"csrf_token": form, "step": "apply", "owner": "Mallory"})
        assert replayed.status_code == 401 and owner_of(conn) == before
        again = app.test_client()  # signing in again works, with a new session
        token = CSRF.search(again.get("/console/sign-in").get_data(as_text=True))[1]
        again.post("/console/sign-in", data={"csrf_token": token, "token": TOKENS["ana"]})
        assert again.get(page).status_code == 200 and thief.get(page).status_code == 302
    finally:
        services(app).close()


def test_an_upload_of_exactly_the_documented_size_is_accepted(client, tmp_path, monkeypatch):
    from allies.web.console import views

    monkeypatch.setattr(views, "UPLOAD_BYTES", 4000)
    token = CSRF.search(client.get("/console/triage").get_data(as_text=True))[1]
    line = b'10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "GET / HTTP/1.1" 200 5\n'
    exact = line * (4000 // len(line)) + b"x" * (4000 % len(line) - 1) + b"\n"
    assert len(exact) == 4000
    for data, status in ((exact, 200), (exact + b"y", 413)):
        (tmp_path / "up.log").write_bytes(data)
        with (tmp_path / "up.log").open("rb") as upload:
            answer = client.post("/console/triage", data={"csrf_token": token, "log": (upload, "up.log")})
        assert answer.status_code == status, len(data)


# -- properties: any request is one access-log line the triage reads back; any owner, one rule -----

ADDRESSES = st.one_of(st.ip_addresses().map(str), st.text(max_size=60))


@settings(max_examples=300, deadline=None)
@given(
    address=ADDRESSES,
    method=st.sampled_from(["GET", "POST", "PUT", "get", "X\x00"]),
    path=st.text(max_size=200),
    status=st.integers(100, 599),
    size=st.one_of(st.none(), st.integers(0, 10**9)),
)
def test_any_request_is_exactly_one_line_that_the_triage_reads_as_that_request(
    address, method, path, status, size
):
    from datetime import UTC, datetime

    from allies.web.accesslog import clf_line

    line = clf_line(address, datetime(2026, 3, 1, 10, tzinfo=UTC), f"{method} /{path} HTTP/1.1", status, size)
    assert "\n" not in line and "\r" not in line
    block = logparse.analyze_block((line + "\n").encode(), logparse.Window())
    assert block.lines == block.parsed == 1 and dict(block.statuses) == {status: 1}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(owner=st.text(max_size=260))
def test_any_owner_from_the_console_is_stored_exactly_or_refused_with_the_clis_rule(client, conn, owner):
    from allies import stores
    from allies.failures import InputProblem
    from allies.validation import parse_store_text

    page = f"/console/allies/{YOUNG_WOLF}/fix"
    token = CSRF.search(client.get(page).get_data(as_text=True))[1]
    answer = client.post(page, data={"csrf_token": token, "step": "apply", "owner": owner})
    if not owner.strip():  # the console strips its fields: no owner given
        assert answer.status_code == 400 and "nothing to change" in answer.get_data(as_text=True)
        return
    try:
        expected = parse_store_text(owner.strip(), "owner")
    except InputProblem as exc:
        assert answer.status_code == 400 and html.escape(exc.detail, quote=True) in answer.get_data(
            as_text=True
        )
        return
    assert answer.status_code == 200 and owner_of(conn) == expected
    stores.undo_last_change(conn, YOUNG_WOLF)
