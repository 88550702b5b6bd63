"""The HTTP contract of /allies/<id>/credentials and /health, through the real Flask app."""

from __future__ import annotations

import json

import psycopg
import pytest
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME, YOUNG_WOLF, stored_credentials

BAD = "The ally was not found or the request is not correct"
UNKNOWN = "1f585fc9-4926-468c-a728-000000000000"


def post(client, ally_id: str, body, **kwargs):
    if "data" not in kwargs:
        kwargs["json"] = body
    return client.post(f"/allies/{ally_id}/credentials", **kwargs)


def audit_rows(conn):
    return conn.execute(
        "SELECT ally_id, outcome, http_status, detail, actor, request_id FROM credential_audit ORDER BY id"
    ).fetchall()


def test_get_reports_credentials_not_set_on_a_fresh_store(client):
    response = client.get(f"/allies/{BARNES}/credentials")
    assert response.status_code == 400
    assert response.get_json() == {"message": "Ally does not have credentials set!"}


def test_post_stores_credentials_and_answers_with_the_store_name(client, conn, keyring):
    response = post(client, BARNES, {"username": CASE3_USERNAME, "password": CASE3_PASSWORD})
    assert response.status_code == 200
    assert response.get_json() == {
        "message": "Credentials added",
        "allyId": BARNES,
        "allyName": "Barnes Inc",
    }
    assert list(response.get_json()) == ["message", "allyId", "allyName"]
    assert client.get(f"/allies/{BARNES}/credentials").get_json() == {"message": "Ally has credentials set!"}
    assert stored_credentials(conn, keyring, BARNES) == (CASE3_USERNAME, CASE3_PASSWORD)


def test_post_accepts_user_as_the_spanish_spec_names_it(client, conn, keyring):
    response = post(client, YOUNG_WOLF, {"user": "u1", "password": "p1"})
    assert response.status_code == 200
    assert response.get_json()["allyName"] == "Young-Wolf"
    assert stored_credentials(conn, keyring, YOUNG_WOLF) == ("u1", "p1")


def test_post_accepts_an_uppercase_id_and_answers_the_canonical_one(client):
    response = post(client, BARNES.upper(), {"username": "u", "password": "p"})
    assert response.status_code == 200
    assert response.get_json()["allyId"] == BARNES


def test_post_keeps_every_other_key_of_the_store(client, conn):
    before = conn.execute("SELECT data FROM stores WHERE id = %s", (BARNES,)).fetchone()[0]
    post(client, BARNES, {"username": "u", "password": "p"})
    after = conn.execute("SELECT data FROM stores WHERE id = %s", (BARNES,)).fetchone()[0]
    assert {k: v for k, v in after.items() if k != "credentials"} == {
        k: v for k, v in before.items() if k != "credentials"
    }


@pytest.mark.parametrize(
    ("ally_id", "kwargs", "detail"),
    [
        (UNKNOWN, {"json": {"username": "u", "password": "p"}}, f"unknown ally: no store has id {UNKNOWN}"),
        (
            "not-a-uuid",
            {"json": {"username": "u", "password": "p"}},
            "unknown ally: no store has id not-a-uuid",
        ),
        (
            f"{BARNES}%0A",
            {"json": {"username": "u", "password": "p"}},
            "malformed ally id: it contains U+000A",
        ),
        ("a%00b", {"json": {"username": "u", "password": "p"}}, "malformed ally id: it contains U+0000"),
        ("x" * 129, {"json": {"username": "u", "password": "p"}}, "malformed ally id: longer than 128"),
        (BARNES, {"json": {"username": "u\x00", "password": "p"}}, "field username contains U+0000"),
        (BARNES, {"json": {"username": "u", "password": "a\nb"}}, "field password contains U+000A"),
        (
            BARNES,
            {"data": '{"username": "u", "password": "a\\ud800b"}', "content_type": "application/json"},
            "field password contains U+D800, which cannot be sent on",
        ),
        (
            BARNES,
            {"data": "[" * 983 + "]" * 983, "content_type": "application/json"},
            "invalid JSON in the request body: nested too deeply",
        ),
        (
            BARNES,
            {
                "data": '{"username": "u", "password": "p", "x": ' + "[" * 990 + "]" * 990 + "}",
                "content_type": "application/json",
            },
            "invalid JSON in the request body: nested too deeply",
        ),
        (BARNES, {"json": {"password": "p"}}, "missing field: username"),
        (BARNES, {"json": {"username": "u"}}, "missing field: password"),
        (BARNES, {"json": {"username": None, "password": "p"}}, "missing field: username"),
        (BARNES, {"json": {"username": "", "password": "p"}}, "empty field: username"),
        (BARNES, {"json": {"username": "u", "password": "   "}}, "empty field: password"),
        (BARNES, {"json": {"username": 7, "password": "p"}}, "field username must be a string"),
        (BARNES, {"json": {"username": "u", "password": ["p"]}}, "field password must be a string"),
        (BARNES, {"json": {"username": "u" * 257, "password": "p"}}, "field username is longer than 256"),
        (BARNES, {"json": {"username": "u", "password": "p" * 1025}}, "field password is longer than 1024"),
        (BARNES, {"json": ["u", "p"]}, "the JSON body must be an object"),
        (BARNES, {"json": {"username": "a", "user": "b", "password": "p"}}, "send either username or user"),
        (
            BARNES,
            {"json": {"username": "a", "user": "a", "password": "p"}},
            "send either username or user, not both",
        ),
        (BARNES, {"data": "{not json", "content_type": "application/json"}, "invalid JSON"),
        (BARNES, {"data": b"\xff\xfe", "content_type": "application/json"}, "invalid JSON"),
        (
            BARNES,
            {"data": "username=u&password=p", "content_type": "text/plain"},
            "the request must be application/json",
        ),
        (BARNES, {"data": ""}, "the request must be application/json"),
    ],
)
def test_post_rejects_bad_input_precisely_and_changes_nothing(client, conn, ally_id, kwargs, detail):
    before = conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall()
    response = client.post(f"/allies/{ally_id}/credentials", **kwargs)
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"] == BAD
    assert body["detail"].startswith(detail)
    assert conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall() == before
    [row] = audit_rows(conn)
    assert row[1:4] == ("rejected", 400, body["detail"])


def test_every_write_attempt_is_audited_once_without_secrets(client, conn):
    post(client, BARNES, {"username": CASE3_USERNAME, "password": CASE3_PASSWORD})
    post(client, UNKNOWN, {"username": CASE3_USERNAME, "password": CASE3_PASSWORD})
    rows = audit_rows(conn)
    assert [(r[0], r[1], r[2]) for r in rows] == [(BARNES, "success", 200), (UNKNOWN, "rejected", 400)]
    assert all(r[4] == "local" and len(r[5]) == 32 for r in rows)
    dump = json.dumps([list(map(str, r)) for r in rows])
    assert CASE3_PASSWORD not in dump and CASE3_USERNAME not in dump


def test_body_over_16_kib_is_refused_with_413_and_audited(client, conn):
    response = client.post(
        f"/allies/{BARNES}/credentials", data="x" * (16 * 1024 + 1), content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json() == {"message": "Request body too large", "detail": "the limit is 16384 bytes"}
    assert [r[1:3] for r in audit_rows(conn)] == [("rejected", 413)]


def test_get_unknown_or_malformed_ally_is_404(client):
    for ally_id in (UNKNOWN, "not-a-uuid", f"{BARNES}%0A", "a%00b"):
        response = client.get(f"/allies/{ally_id}/credentials")
        assert response.status_code == 404
        assert response.get_json() == {"message": "Ally was not found"}


def test_wrong_method_is_405_json_with_allow(client):
    response = client.put(f"/allies/{BARNES}/credentials", json={})
    assert response.status_code == 405
    assert response.get_json() == {"message": "Method not allowed"}
    assert "POST" in response.headers["Allow"]


def test_unknown_path_is_404_json(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.get_json() == {"message": "Not found"}


def test_responses_carry_security_headers_and_a_request_id(client):
    response = client.get(f"/allies/{BARNES}/credentials")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert len(response.headers["X-Request-Id"]) == 32


def test_health_reports_database_ready(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_unexpected_failure_is_500_without_details(client, conn):
    # A store whose data is a JSON array cannot take a credentials key: the update itself fails.
    conn.execute("UPDATE stores SET data = '[1, 2]' WHERE id = %s", (BARNES,))
    response = post(client, BARNES, {"username": CASE3_USERNAME, "password": CASE3_PASSWORD})
    assert response.status_code == 500
    assert response.get_json() == {"message": "Server error"}
    assert [r[1:3] for r in audit_rows(conn)] == [("error", 500)]


def test_server_log_has_one_common_log_line_per_request_and_no_secret(client, settings):
    post(client, BARNES, {"username": CASE3_USERNAME, "password": CASE3_PASSWORD})
    client.get(f"/allies/{BARNES}/credentials?password={CASE3_PASSWORD}")
    lines = settings.log_file.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("127.0.0.1 - - [")
    assert lines[0].endswith(f'] "POST /allies/{BARNES}/credentials HTTP/1.1" 200 104')
    assert lines[1].endswith(f'] "GET /allies/{BARNES}/credentials HTTP/1.1" 200 40')
    assert CASE3_PASSWORD not in settings.log_file.read_text()


def test_any_id_the_table_holds_is_served_and_uuids_in_any_case_are_one_ally(client, conn):
    conn.execute("""INSERT INTO stores VALUES ('store-42', '{"name": "Legacy"}')""")
    assert post(client, "store-42", {"username": "u", "password": "p"}).get_json()["allyName"] == "Legacy"
    assert client.get("/allies/store-42/credentials").get_json() == {"message": "Ally has credentials set!"}
    response = post(client, BARNES.upper(), {"username": "u", "password": "p"})
    assert response.get_json()["allyId"] == BARNES


def test_no_redirect_is_built_from_the_host_header(client):
    for path in ("/allies/..%2f/credentials", "/allies//credentials", f"/allies/{BARNES}/credentials/"):
        response = client.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 404 and "Location" not in response.headers, path
        assert response.get_json() == {"message": "Not found"} or response.get_json() == {
            "message": "Ally was not found"
        }


def test_options_is_a_json_405_naming_the_allowed_methods(client):
    response = client.options(f"/allies/{BARNES}/credentials")
    assert response.status_code == 405 and response.get_json() == {"message": "Method not allowed"}
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}


@pytest.mark.parametrize(
    "refused",
    [
        "a b",
        "x" * 129,
        "1F585FC9-4926-468C-A728-EB34D80E9EA1",
        "a/b",
        "tab\there",
        "abc\u202edef",
        "soft\u00ad",
        "t\U000e0041",
    ],
)
def test_the_table_refuses_ids_the_api_could_not_serve(conn, refused):
    with pytest.raises(psycopg.errors.CheckViolation, match="stores_id_is_an_ally_id"):
        conn.execute("INSERT INTO stores VALUES (%s, '{}')", (refused,))
