"""The support console through the real Flask app and a real PostgreSQL: who may use it, CSRF,
headers, escaping, languages, and each case's page changing (or not) the database.
tests/test_console_browser.py drives the same pages in a real browser."""

from __future__ import annotations

import gzip
import re
from dataclasses import replace

import flask
import jinja2
import pytest
from conftest import (
    BARNES,
    CASE3_PASSWORD,
    CASE3_USERNAME,
    ROOT,
    TOKENS,
    YOUNG_WOLF,
    make_app,
    stored_credentials,
)
from flask.sessions import NullSession
from helpers.logs import B, known_log

from allies.ratelimit import Limit
from allies.web.console import guard, i18n, views
from allies.web.services import services

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HOSTILE_ID = "<em>hostile&amp;\"'"
HOSTILE_NAME = '<script>alert("x")</script>'


@pytest.fixture
def console(app):
    return app.test_client()


@pytest.fixture
def secured_app(settings):
    app = make_app(replace(settings, api_tokens=TOKENS))
    yield app
    services(app).close()


def csrf_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return CSRF.search(response.get_data(as_text=True))[1]


def text_of(response) -> str:
    return response.get_data(as_text=True)


def store_data(conn, ally_id: str) -> dict:
    return conn.execute("SELECT data::jsonb FROM stores WHERE id = %s", (ally_id,)).fetchone()[0]


# -- who may use it ---------------------------------------------------------------------------


PAGES = [
    "/console/",
    "/console/allies?q=Young",
    f"/console/allies/{YOUNG_WOLF}",
    f"/console/allies/{YOUNG_WOLF}/fix",
    f"/console/allies/{BARNES}/credentials",
    "/console/triage",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_with_a_policy_that_forbids_scripts_frames_and_outside_resources(console, path):
    response = console.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == guard.CONTENT_SECURITY_POLICY
    policy = dict(part.strip().split(" ", 1) for part in guard.CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "script-src" not in policy  # so default-src 'none' applies: no script at all
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"
    page = text_of(response)
    assert (
        "<script" not in page
        and " style=" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_without_tokens_only_a_browser_on_this_machine_gets_in(console, conn):
    assert console.get("/console/").status_code == 200
    for host in ("127.0.0.1:4000", "[::1]:4000", "localhost"):
        assert console.get("/console/", headers={"Host": host}).status_code == 200
    from_afar = console.get("/console/", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert from_afar.status_code == 403 and "only a browser on this machine" in text_of(from_afar)
    # DNS rebinding: a page of attacker.example whose name now resolves to 127.0.0.1
    rebound = console.get("/console/", headers={"Host": "attacker.example:4000"})
    assert rebound.status_code == 403
    token = csrf_of(console, f"/console/allies/{YOUNG_WOLF}/fix")
    before = store_data(conn, YOUNG_WOLF)
    refused = console.post(
        f"/console/allies/{YOUNG_WOLF}/fix",
        data={"csrf_token": token, "owner": "Mallory", "step": "apply"},
        headers={"Host": "attacker.example"},
    )
    assert refused.status_code == 403 and store_data(conn, YOUNG_WOLF) == before


def test_with_tokens_a_person_signs_in_once_and_the_cookie_names_them(secured_app):
    client = secured_app.test_client()
    first = client.get(f"/console/allies/{YOUNG_WOLF}")
    assert first.status_code == 302
    assert first.headers["Location"] == f"/console/sign-in?next=/console/allies/{YOUNG_WOLF}"
    assert client.post("/console/allies/x/undo").status_code == 401
    token = csrf_of(client, first.headers["Location"])
    wrong = client.post("/console/sign-in", data={"csrf_token": token, "token": "not-the-token-at-all"})
    assert wrong.status_code == 401 and "That token is not valid." in text_of(wrong)
    signed = client.post(
        "/console/sign-in",
        data={"csrf_token": token, "token": TOKENS["ana"], "next": f"/console/allies/{YOUNG_WOLF}"},
    )
    assert signed.status_code == 302 and signed.headers["Location"] == f"/console/allies/{YOUNG_WOLF}"
    cookie = next(h for h in signed.headers.getlist("Set-Cookie") if h.startswith("allies_console="))
    assert {"HttpOnly", "SameSite=Strict", "Path=/console"} <= {p.strip() for p in cookie.split(";")}
    assert TOKENS["ana"] not in cookie
    page = client.get(f"/console/allies/{YOUNG_WOLF}")
    assert page.status_code == 200 and '<span class="actor">ana</span>' in text_of(page)
    client.post("/console/sign-out", data={"csrf_token": csrf_of(client, "/console/")})
    assert client.get("/console/").status_code == 302


def test_a_session_ends_when_its_token_changes(secured_app, settings):
    client = secured_app.test_client()
    token = csrf_of(client, "/console/sign-in")
    client.post("/console/sign-in", data={"csrf_token": token, "token": TOKENS["ana"]})
    assert client.get("/console/").status_code == 200
    rotated = make_app(replace(settings, api_tokens={**TOKENS, "ana": "ana-new-token-0123456789"}))
    try:
        other = rotated.test_client()
        other.set_cookie(
            "allies_console", client.get_cookie("allies_console", path="/console").value, path="/console"
        )
        assert other.get("/console/").status_code == 302  # the same cookie, the token changed: out
    finally:
        services(rotated).close()


def test_guessing_tokens_is_held_by_the_write_rate_limit(settings):
    app = make_app(replace(settings, api_tokens=TOKENS, write_rate_limit=Limit.parse("3/minute", "test")))
    try:
        client = app.test_client()
        token = csrf_of(client, "/console/sign-in")
        guesses = [
            client.post("/console/sign-in", data={"csrf_token": token, "token": f"guess-{n:016d}"})
            for n in range(4)
        ]
        assert [guess.status_code for guess in guesses] == [401, 401, 401, 429]
        right = client.post("/console/sign-in", data={"csrf_token": token, "token": TOKENS["ana"]})
        assert right.status_code == 429  # even the right one waits: the limit counts attempts
    finally:
        services(app).close()


@pytest.mark.parametrize(
    "target",
    ["https://attacker.example/", "//attacker.example/console/", "/console\\@attacker.example", "/health"],
)
def test_after_signing_in_the_console_never_sends_anyone_elsewhere(secured_app, target):
    client = secured_app.test_client()
    token = csrf_of(client, "/console/sign-in")
    signed = client.post(
        "/console/sign-in", data={"csrf_token": token, "token": TOKENS["luis"], "next": target}
    )
    assert signed.headers["Location"] == "/console/"


def test_an_unknown_console_path_gets_the_consoles_page_and_the_api_keeps_its_json(console):
    page = console.get("/console/no-such-page", headers={"Accept-Language": "es"})
    assert page.status_code == 404 and "Esa página no existe." in text_of(page)
    assert page.headers["Content-Security-Policy"] == guard.CONTENT_SECURITY_POLICY
    api = console.get("/allies/x/no-such-endpoint")
    assert api.status_code == 404 and api.get_json() == {"message": "Not found"}


def test_only_the_console_has_sessions(app):
    """The API's requests neither read the console's cookie nor build a signer (a per-request cost)."""
    with app.test_request_context("/allies/x/credentials", headers={"Cookie": "allies_console=x"}):
        assert isinstance(flask.session._get_current_object(), NullSession)
    with app.test_request_context("/console/"):
        assert not isinstance(flask.session._get_current_object(), NullSession)


# -- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("forged", [None, "", "forged-token"])
def test_a_post_without_the_forms_csrf_token_is_refused_and_changes_nothing(console, conn, forged):
    csrf_of(console, "/console/")  # the session has a token; the forged form does not carry it
    before_store, before_barnes = store_data(conn, YOUNG_WOLF), store_data(conn, BARNES)
    posts = [
        (f"/console/allies/{YOUNG_WOLF}/fix", {"owner": "Mallory", "step": "apply"}),
        (f"/console/allies/{YOUNG_WOLF}/undo", {}),
        (f"/console/allies/{BARNES}/credentials", {"username": "mallory", "password": "pw"}),
    ]
    for path, data in posts:
        if forged is not None:
            data = {**data, "csrf_token": forged}
        refused = console.post(path, data=data)
        assert refused.status_code == 400 and "did not come from this console" in text_of(refused)
    assert store_data(conn, YOUNG_WOLF) == before_store and store_data(conn, BARNES) == before_barnes
    assert conn.execute("SELECT count(*) FROM credential_audit").fetchone()[0] == 0


# -- case 2 -----------------------------------------------------------------------------------


def test_the_store_fix_previews_applies_and_undoes_with_the_actor_journaled(console, conn):
    path = f"/console/allies/{YOUNG_WOLF}/fix"
    token, before = csrf_of(console, path), store_data(conn, YOUNG_WOLF)
    form = {
        "csrf_token": token,
        "owner": "Old-Wolf",
        "old_tag": "finanzas",
        "new_tag": "educacion",
        "reason": "T-1",
    }
    preview = console.post(path, data={**form, "step": "preview"})
    assert preview.status_code == 200 and 'id="apply"' in text_of(preview)
    assert '"Old-Wolf"' in text_of(preview) and store_data(conn, YOUNG_WOLF) == before  # nothing written
    applied = console.post(path, data={**form, "step": "apply"})
    assert applied.status_code == 200 and "Journaled as change" in text_of(applied)
    after = store_data(conn, YOUNG_WOLF)
    assert after["brand_owner"] == "Old-Wolf" and "finanzas" not in after["tags"].values()
    assert "educacion" in after["tags"].values() and after["name"] == before["name"]
    assert conn.execute("SELECT actor, reason FROM store_changes").fetchall() == [("local", "T-1")]
    undone = console.post(f"/console/allies/{YOUNG_WOLF}/undo", data={"csrf_token": token})
    assert undone.status_code == 200 and "Change undone" in text_of(undone)
    assert store_data(conn, YOUNG_WOLF) == before
    history = text_of(console.get(f"/console/allies/{YOUNG_WOLF}"))
    assert "undo of change 1" in history and "T-1" in history


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({}, "nothing to change"),
        ({"old_tag": "finanzas"}, "choose both the tag to replace and its replacement"),
    ],
)
def test_a_fix_with_nothing_to_do_says_why_and_writes_nothing(console, conn, form, problem):
    path = f"/console/allies/{YOUNG_WOLF}/fix"
    token, before = csrf_of(console, path), store_data(conn, YOUNG_WOLF)
    refused = console.post(path, data={"csrf_token": token, "step": "apply", **form})
    assert refused.status_code == 400 and problem in text_of(refused)
    assert store_data(conn, YOUNG_WOLF) == before
    unknown = console.post("/console/allies/no-such-store/fix", data={"csrf_token": token, "owner": "x"})
    assert unknown.status_code == 404 and "no store has id no-such-store" in text_of(unknown)


def test_the_write_rate_limit_applies_to_the_consoles_writes(settings, conn):
    app = make_app(replace(settings, write_rate_limit=Limit.parse("2/minute", "test")))
    try:
        client = app.test_client()
        path = f"/console/allies/{YOUNG_WOLF}/fix"
        token = csrf_of(client, path)
        form = {"csrf_token": token, "owner": "Old-Wolf", "step": "apply"}
        assert [client.post(path, data=form).status_code for _ in range(2)] == [200, 200]
        limited = client.post(path, data={**form, "owner": "Someone-Else"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "Too many changes from this address" in text_of(limited)
        assert store_data(conn, YOUNG_WOLF)["brand_owner"] == "Old-Wolf"
    finally:
        services(app).close()


# -- case 3 -----------------------------------------------------------------------------------


def test_credentials_are_set_through_the_apis_path_encrypted_and_audited(console, conn, keyring):
    path = f"/console/allies/{BARNES}/credentials"
    token = csrf_of(console, path)
    saved = console.post(
        path, data={"csrf_token": token, "username": CASE3_USERNAME, "password": CASE3_PASSWORD}
    )
    assert saved.status_code == 303 and saved.headers["Location"].endswith(
        f"/console/allies/{BARNES}?saved=credentials"
    )
    assert stored_credentials(conn, keyring, BARNES) == (CASE3_USERNAME, CASE3_PASSWORD)
    assert CASE3_PASSWORD not in str(store_data(conn, BARNES))
    row = conn.execute("SELECT actor, ally_id, outcome, http_status FROM credential_audit").fetchall()
    assert row == [("local", BARNES, "success", 200)]
    page = text_of(console.get(saved.headers["Location"]))
    assert "Credentials saved, encrypted." in page and "key test-key-1" in page
    assert CASE3_PASSWORD not in page and CASE3_USERNAME not in page


def test_refused_credentials_are_audited_and_the_password_is_never_echoed(console, conn):
    path = f"/console/allies/{BARNES}/credentials"
    token = csrf_of(console, path)
    refused = console.post(
        path, data={"csrf_token": token, "username": "aliado_addi", "password": " \x01secret-pw"}
    )
    assert refused.status_code == 400
    page = text_of(refused)
    assert "secret-pw" not in page and 'value="aliado_addi"' in page and "password" in page
    assert conn.execute("SELECT outcome, http_status, actor FROM credential_audit").fetchall() == [
        ("rejected", 400, "local")
    ]
    assert store_data(conn, BARNES).get("credentials") is None


# -- hostile text -----------------------------------------------------------------------------


def test_hostile_ids_and_names_are_rendered_literally(console, conn, tmp_path):
    conn.execute(
        "INSERT INTO stores (id, data) VALUES (%s, jsonb_build_object('name', %s::text, 'brand_owner', %s::text))",
        (HOSTILE_ID, HOSTILE_NAME, HOSTILE_NAME),
    )
    found = text_of(console.get("/console/allies", query_string={"q": "<script>"}))
    ally = text_of(console.get(f"/console/allies/{HOSTILE_ID.replace('&', '%26')}"))
    for page in (found, ally):
        assert "<script>" not in page and "<em>" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&lt;em&gt;hostile&amp;amp;&#34;&#39;" in ally
    log = tmp_path / "hostile.log"
    log.write_text(
        '10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "POST /allies/%3Cimg%20src=x%3E/credentials HTTP/1.1" 404 9\n'
    )
    token = csrf_of(console, "/console/triage")
    with log.open("rb") as upload:
        report = console.post("/console/triage", data={"csrf_token": token, "log": (upload, "<b>.log")})
    page = text_of(report)
    assert report.status_code == 200 and "<img" not in page and "<b>" not in page
    assert "&lt;img src=x&gt;" in page and "&lt;b&gt;.log" in page


# -- case 4 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True])
def test_an_uploaded_log_gets_the_clis_report_with_its_timeline(console, tmp_path, packed):
    lines, truth = known_log()
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "known.log"
    path.write_bytes(gzip.compress(data) if packed else data)
    token = csrf_of(console, "/console/triage")
    with path.open("rb") as upload:
        response = console.post("/console/triage", data={"csrf_token": token, "log": (upload, "known.log")})
    page = text_of(response)
    assert response.status_code == 200
    figure = lambda name: re.search(rf'id="{name}">([^<]*)<', page)[1]  # noqa: E731
    assert figure("total-lines") == str(truth["total_lines"])
    assert figure("failed-requests") == str(truth["failed_requests"])
    assert figure("affected-count") == str(len(truth["affected"]))
    assert figure("still-affected") == str(sum(not recovered for recovered in truth["affected"].values()))
    assert page.count("<rect") >= truth["failed_requests"] and 'id="timeline-table"' in page
    plans = page[page.index('id="plans-heading"') :]
    assert f"no store has id {B}: confirm the id" in plans  # B is still affected and not in the database
    assert "not a valid ally id" in plans  # the id with a newline


def test_a_bad_or_oversized_upload_is_refused_with_a_reason(console, tmp_path, monkeypatch):
    token = csrf_of(console, "/console/triage")
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(bytes(range(256)) * 40)[:-30])  # cut: no end
    with broken.open("rb") as upload:
        refused = console.post("/console/triage", data={"csrf_token": token, "log": (upload, "broken.gz")})
    assert refused.status_code == 400 and "not a readable gzip file" in text_of(refused)
    assert console.post("/console/triage", data={"csrf_token": token}).status_code == 400
    monkeypatch.setattr(views, "UNPACKED_BYTES", 10_000)
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"z" * 3_000_000))  # 3 KB that unpack to 3 MB
    with bomb.open("rb") as upload:
        unpacked = console.post("/console/triage", data={"csrf_token": token, "log": (upload, "bomb.gz")})
    assert unpacked.status_code == 400 and "once decompressed" in text_of(unpacked)
    monkeypatch.setattr(views, "UPLOAD_BYTES", 1000)
    big = tmp_path / "big.log"
    big.write_bytes(b"y" * 5000)
    with big.open("rb") as upload:
        too_big = console.post("/console/triage", data={"csrf_token": token, "log": (upload, "big.log")})
    assert too_big.status_code == 413 and "too large" in text_of(too_big)


def test_the_servers_own_log_can_be_triaged(console, settings):
    console.get("/allies/nope/credentials")  # a 404 in the server's log
    token = csrf_of(console, "/console/triage")
    page = text_of(console.post("/console/triage", data={"csrf_token": token, "source": "server"}))
    assert str(settings.log_file) in page and re.search(r'id="failed-requests">([1-9][0-9]*)<', page)


# -- overview, the database down ---------------------------------------------------------------


def test_the_overview_shows_the_counts_the_tag_chart_and_recent_events(console, conn):
    token = csrf_of(console, f"/console/allies/{BARNES}/credentials")
    console.post(
        f"/console/allies/{BARNES}/credentials", data={"csrf_token": token, "username": "u", "password": "p"}
    )
    page = text_of(console.get("/console/"))
    stores, with_credentials = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE data ? 'credentials' AND data->'credentials' <> 'null') FROM stores"
    ).fetchone()
    assert re.search(r'id="stores-count">([0-9]+)<', page)[1] == str(stores)
    assert with_credentials == 1 and "(1)" in page
    tags = conn.execute(ROOT.joinpath("sql", "01_tags_distribution.sql").read_text()).fetchall()
    rows = re.findall(r"<tr><td>([a-z]+)</td><td class=\"num\">([0-9]+)</td></tr>", page)
    assert rows == [(tag, str(n)) for tag, n in tags]
    assert page.count('<rect x="120"') == len(tags)  # one bar per tag
    assert BARNES in page and "credentials" in page  # the write among the recent events


def test_with_the_database_down_the_overview_says_so_and_other_pages_answer_503(settings):
    app = make_app(
        replace(settings, database_url="postgresql://postgres@127.0.0.1:9/none", db_timeout_seconds=0.3)
    )
    try:
        client = app.test_client()
        overview = client.get("/console/")
        assert overview.status_code == 200 and 'id="database-status">unavailable<' in text_of(overview)
        ally = client.get(f"/console/allies/{YOUNG_WOLF}")
        assert ally.status_code == 503 and ally.headers["Retry-After"] == "5"
        assert "The database is not answering" in text_of(ally)
    finally:
        services(app).close()


# -- languages --------------------------------------------------------------------------------


def test_spanish_from_the_browser_and_the_switch_remembered(console):
    assert "<h1>Resumen</h1>" in text_of(
        console.get("/console/", headers={"Accept-Language": "es-CO,es;q=0.9"})
    )
    assert "<h1>Overview</h1>" in text_of(
        console.get("/console/", headers={"Accept-Language": "fr, en;q=0.5"})
    )
    switched = console.get("/console/?lang=es", headers={"Accept-Language": "en"})
    assert '<html lang="es">' in text_of(switched)
    assert "Análisis de logs (caso 4)" in text_of(
        console.get("/console/triage", headers={"Accept-Language": "en"})
    )
    assert "Log triage (case 4)" in text_of(console.get("/console/triage?lang=en"))


def _template_messages() -> set[str]:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    folder = ROOT / "src" / "allies" / "web" / "console" / "templates" / "console"
    found = set()
    for template in folder.glob("*.html"):
        for _, _, message in env.extract_translations(template.read_text()):
            if isinstance(message, tuple):
                message = message[0]
            if message is not None:  # _(value): the values of SHOWN_VALUES
                found.add(message)
    return found


def _python_messages() -> set[str]:
    source = (ROOT / "src" / "allies" / "web" / "console" / "views.py").read_text()
    return set(re.findall(r'i18n\.gettext\("([^"]+)"\)', source))


def test_every_message_has_its_spanish_with_the_same_placeholders():
    messages = _template_messages() | _python_messages() | set(i18n.SHOWN_VALUES)
    assert len(messages) > 100
    missing = sorted(messages - set(i18n.SPANISH))
    assert missing == []
    placeholders = re.compile(r"%\([a-z_]+\)s")
    for english in messages:
        assert sorted(placeholders.findall(english)) == sorted(placeholders.findall(i18n.SPANISH[english])), (
            english
        )
    assert sorted(set(i18n.SPANISH) - messages) == []  # no stale entry either


# -- credentials versions: history, restore, conflicts -------------------------------------------

LOADED = re.compile(r'name="loaded_version" value="([^"]*)"')


def _write(client, username: str) -> None:
    body = {"username": username, "password": f"{username}-password"}
    assert client.post(f"/allies/{BARNES}/credentials", json=body).status_code == 200


def test_the_ally_page_lists_the_versions_with_a_restore_button_for_kept_ones(console):
    for name in ("first", "second"):
        _write(console, name)
    page = text_of(console.get(f"/console/allies/{BARNES}"))
    versions = page[page.index('id="versions"') : page.index("</table>", page.index('id="versions"'))]
    assert versions.count('<td class="num">') == 2 and "current" in versions
    assert "Restore version 1" in versions and "Restore version 2" not in versions  # not the current one
    assert "first-password" not in page and "second-password" not in page


def test_a_restore_is_previewed_then_applied_as_a_new_version(console, conn, keyring):
    for name in ("good", "broken"):
        _write(console, name)
    token = csrf_of(console, f"/console/allies/{BARNES}")
    preview = console.post(
        f"/console/allies/{BARNES}/credentials/restore", data={"csrf_token": token, "version": "1"}
    )
    assert preview.status_code == 200 and "Restore version 1?" in text_of(preview)
    assert LOADED.search(text_of(preview))[1] == "2"
    assert stored_credentials(conn, keyring, BARNES)[0] == "broken"  # a preview writes nothing
    applied = console.post(
        f"/console/allies/{BARNES}/credentials/restore",
        data={"csrf_token": token, "version": "1", "loaded_version": "2", "step": "apply"},
    )
    assert applied.status_code == 303
    assert stored_credentials(conn, keyring, BARNES) == ("good", "good-password")
    row = conn.execute(
        "SELECT actor, action, detail FROM credential_audit ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row == ("local", "credentials.restore", "restored version 1")
    assert conn.execute(
        "SELECT version, restored_from FROM credential_versions WHERE ally_id = %s ORDER BY version DESC LIMIT 1",
        (BARNES,),
    ).fetchone() == (3, 1)


def test_a_change_made_meanwhile_shows_a_conflict_instead_of_being_overwritten(console, conn, keyring):
    _write(console, "first")
    form = text_of(console.get(f"/console/allies/{BARNES}/credentials"))
    token, loaded = CSRF.search(form)[1], LOADED.search(form)[1]
    assert loaded == "1"
    _write(console, "someone-else")  # another engineer, through the API, meanwhile
    stale = console.post(
        f"/console/allies/{BARNES}/credentials",
        data={"csrf_token": token, "loaded_version": loaded, "username": "mine", "password": "mine"},
    )
    assert stale.status_code == 409 and "changed since you loaded the page" in text_of(stale)
    assert "Version 2 was set by local" in text_of(stale)
    assert stored_credentials(conn, keyring, BARNES) == ("someone-else", "someone-else-password")
    restore = console.post(
        f"/console/allies/{BARNES}/credentials/restore",
        data={"csrf_token": token, "version": "1", "loaded_version": "1", "step": "apply"},
    )
    assert restore.status_code == 409
    assert stored_credentials(conn, keyring, BARNES)[0] == "someone-else"


def test_a_first_write_from_a_form_loaded_without_credentials_refuses_to_overwrite(console, conn, keyring):
    form = text_of(console.get(f"/console/allies/{BARNES}/credentials"))
    token, loaded = CSRF.search(form)[1], LOADED.search(form)[1]
    assert loaded == "none"
    _write(console, "first-engineer")
    late = console.post(
        f"/console/allies/{BARNES}/credentials",
        data={"csrf_token": token, "loaded_version": loaded, "username": "second", "password": "second"},
    )
    assert late.status_code == 409
    assert stored_credentials(conn, keyring, BARNES)[0] == "first-engineer"


def test_a_destroyed_or_unknown_version_cannot_be_restored_from_the_console(console):
    _write(console, "only")
    token = csrf_of(console, f"/console/allies/{BARNES}")
    for version in ("9", "x", ""):
        refused = console.post(
            f"/console/allies/{BARNES}/credentials/restore", data={"csrf_token": token, "version": version}
        )
        assert refused.status_code == 400 and "no kept credentials version" in text_of(refused)
