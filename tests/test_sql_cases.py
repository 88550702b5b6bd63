"""sql/01 (tag report) and sql/02 (safe store update + rollback), run as-is with psql, on the
generated database, on json and jsonb, and on the original database."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter

import psycopg
import pytest
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME, ROOT, YOUNG_WOLF, stored_credentials
from psycopg.types.json import Jsonb

from allies import audit, credentials, reports, stores
from allies.embedded import bin_dir
from allies.validation import Rejected

UPDATE_SQL = ROOT / "sql" / "02_update_store_owner_and_tags.sql"
ROLLBACK_SQL = ROOT / "sql" / "02_rollback_store_update.sql"
REPORT_SQL = ROOT / "sql" / "01_tags_distribution.sql"
SKIPPED_SQL = ROOT / "sql" / "01_tags_skipped_rows.sql"


def psql_file(url: str, path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-f", str(path), url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def table_rows(psql_output: str) -> list[list[str]]:
    """The cells of psql's aligned output (header and data lines, no rulers or footers)."""
    return [[cell.strip() for cell in line.split("|")] for line in psql_output.splitlines() if "|" in line]


def expected_distribution(conn) -> list[tuple[str, int]]:
    """Computed in Python, independently of the SQL: distinct string tags of slots tag1..tag3."""
    counts: Counter[str] = Counter()
    for (data,) in conn.execute("SELECT data::jsonb FROM stores"):
        tags = data.get("tags") if isinstance(data, dict) else None
        if isinstance(tags, dict):
            slots = (tags.get(slot) for slot in ("tag1", "tag2", "tag3"))
            counts.update({value for value in slots if isinstance(value, str)})
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def report(conn) -> list[tuple[str, int]]:
    return [(row["tag"], row["stores"]) for row in reports.tag_distribution(conn)]


def young_wolf(conn) -> dict:
    return conn.execute("SELECT data::jsonb FROM stores WHERE id = %s", (YOUNG_WOLF,)).fetchone()[0]


def set_tags(conn, tags: dict) -> None:
    conn.execute(
        "UPDATE stores SET data = jsonb_set(data::jsonb, '{tags}', %s) WHERE id = %s",
        (Jsonb(tags), YOUNG_WOLF),
    )


# -- case 1 ---------------------------------------------------------------------------------


def test_report_matches_an_independent_count_on_the_generated_data(conn):
    got = report(conn)
    assert got == expected_distribution(conn)
    assert sum(count for _, count in got) == 900  # 300 stores x 3 distinct tags
    assert [count for _, count in got] == sorted((count for _, count in got), reverse=True)


def test_report_is_identical_on_json_and_jsonb(conn):
    as_jsonb = report(conn)
    conn.execute("ALTER TABLE stores ALTER COLUMN data TYPE json USING data::json")
    assert report(conn) == as_jsonb


def test_report_counts_a_repeated_tag_once_and_skips_malformed_tags(database_url, conn):
    conn.execute("ALTER TABLE stores ALTER COLUMN data TYPE json USING data::json")
    odd = {
        "a0000000-0000-4000-8000-000000000001": '{"name": "dup", "tags": {"tag1": "hogar", "tag2": "hogar", "tag3": "ropa"}}',
        "a0000000-0000-4000-8000-000000000002": '{"name": "no tags"}',
        "a0000000-0000-4000-8000-000000000003": '{"name": "null", "tags": null}',
        "a0000000-0000-4000-8000-000000000004": '{"name": "array", "tags": ["hogar"]}',
        "a0000000-0000-4000-8000-000000000005": '{"name": "numbers", "tags": {"tag1": 7, "tag2": "hogar", "tag3": null}}',
        "a0000000-0000-4000-8000-000000000006": "null",
        "a0000000-0000-4000-8000-000000000007": '{"name": "extra", "tags": {"tag1": "ropa", "tag4": "hogar"}}',
    }
    for store_id, data in odd.items():
        conn.execute("INSERT INTO stores (id, data) VALUES (%s, %s)", (store_id, data))
    assert report(conn) == expected_distribution(conn)
    skipped = psql_file(database_url, SKIPPED_SQL)
    assert skipped.returncode == 0, skipped.stderr
    listed = {cells[0] for cells in table_rows(skipped.stdout) if cells[0].startswith("a0000000")}
    assert listed == {f"a0000000-0000-4000-8000-00000000000{n}" for n in (2, 3, 4, 5, 6, 7)}


def test_report_file_runs_as_is_in_psql(database_url, conn):
    result = psql_file(database_url, REPORT_SQL)
    assert result.returncode == 0, result.stderr
    assert "(9 rows)" in result.stdout
    rows = table_rows(result.stdout)
    assert rows[0] == ["tag", "stores"]
    assert [(tag, int(count)) for tag, count in rows[1:]] == expected_distribution(conn)


def test_report_on_the_original_database(upstream_url):
    with psycopg.connect(upstream_url) as conn:
        got = report(conn)
        assert got == expected_distribution(conn)
        assert sum(count for _, count in got) == 900


# -- case 2 ---------------------------------------------------------------------------------


def test_update_changes_owner_and_tag_and_prints_before_and_after(database_url, conn):
    before = young_wolf(conn)
    result = psql_file(database_url, UPDATE_SQL)
    assert result.returncode == 0, result.stderr
    after = young_wolf(conn)
    assert after["brand_owner"] == "Old-Wolf" and after["name"] == "Young-Wolf"
    assert after["tags"] == {"tag1": "educacion", "tag2": "movilidad", "tag3": "tecnologia"}
    untouched = {k: v for k, v in after.items() if k not in ("brand_owner", "tags")}
    assert untouched == {k: v for k, v in before.items() if k not in ("brand_owner", "tags")}
    printed = table_rows(result.stdout)
    assert ["before", YOUNG_WOLF, "Young-Wolf", before["brand_owner"]] == printed[1][:4]
    assert printed[3][:4] == ["after", YOUNG_WOLF, "Young-Wolf", "Old-Wolf"]
    assert "2 change(s) applied" in result.stderr
    assert conn.execute(
        "SELECT count(*) FROM stores WHERE data::jsonb->>'brand_owner' = 'Old-Wolf'"
    ).fetchone() == (1,)


def test_update_is_idempotent_and_says_so(database_url, conn):
    psql_file(database_url, UPDATE_SQL)
    first = conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall()
    again = psql_file(database_url, UPDATE_SQL)
    assert again.returncode == 0
    assert "already up to date, nothing changed" in again.stderr
    assert conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall() == first
    assert conn.execute("SELECT count(*) FROM store_changes").fetchone() == (1,)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"tag1": "finanzas", "tag2": "educacion", "tag3": "hogar"}, {"tag2": "educacion", "tag3": "hogar"}),
        (
            {"tag1": "hogar", "tag2": "ropa", "tag3": "finanzas"},
            {"tag1": "hogar", "tag2": "ropa", "tag3": "educacion"},
        ),
        ({"tag1": "finanzas", "tag2": "finanzas", "tag3": "ropa"}, {"tag1": "educacion", "tag3": "ropa"}),
        (
            {"tag1": "hogar", "tag2": "ropa", "tag3": "belleza"},
            {"tag1": "hogar", "tag2": "ropa", "tag3": "belleza"},
        ),
    ],
)
def test_update_never_duplicates_a_tag_and_matches_the_cli(database_url, conn, tags, expected):
    set_tags(conn, tags)
    assert psql_file(database_url, UPDATE_SQL).returncode == 0
    assert young_wolf(conn)["tags"] == expected
    # The CLI's library path gives exactly the same result from the same starting point.
    set_tags(conn, tags)
    conn.execute(
        "UPDATE stores SET data = jsonb_set(data::jsonb, '{brand_owner}', '\"X\"') WHERE id = %s",
        (YOUNG_WOLF,),
    )
    change = stores.Change(owner="Old-Wolf", replace_tags=(("finanzas", "educacion"),))
    if "finanzas" not in tags.values() and "educacion" not in tags.values():
        # The SQL file of the case is the urgent fix as written; the library calls a replacement of
        # a tag the store lacks a mistake (a typo), and changes nothing at all.
        with pytest.raises(Rejected, match="has no tag 'finanzas'"):
            stores.apply_change(conn, YOUNG_WOLF, change, reason="test")
        assert young_wolf(conn)["tags"] == tags and young_wolf(conn)["brand_owner"] == "X"
        return
    stores.apply_change(conn, YOUNG_WOLF, change, reason="test")
    assert young_wolf(conn)["tags"] == expected and young_wolf(conn)["brand_owner"] == "Old-Wolf"


def test_update_keeps_credentials_set_before(client, database_url, conn, keyring):
    response = client.post(
        f"/allies/{YOUNG_WOLF}/credentials", json={"username": CASE3_USERNAME, "password": CASE3_PASSWORD}
    )
    assert response.status_code == 200
    envelope = young_wolf(conn)["credentials"]
    assert psql_file(database_url, UPDATE_SQL).returncode == 0
    assert young_wolf(conn)["credentials"] == envelope
    assert stored_credentials(conn, keyring, YOUNG_WOLF) == (CASE3_USERNAME, CASE3_PASSWORD)


def test_update_aborts_cleanly_when_the_store_does_not_exist(database_url, conn):
    conn.execute("DELETE FROM stores WHERE id = %s", (YOUNG_WOLF,))
    before = conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall()
    result = psql_file(database_url, UPDATE_SQL)
    assert result.returncode == 3
    assert f"store {YOUNG_WOLF} not found: nothing was changed" in result.stderr
    assert conn.execute("SELECT id, data FROM stores ORDER BY id").fetchall() == before
    assert conn.execute("SELECT count(*) FROM store_changes").fetchone() == (0,)


def test_rollback_restores_owner_and_tags_and_keeps_later_credentials(client, database_url, conn, keyring):
    before = young_wolf(conn)
    assert psql_file(database_url, UPDATE_SQL).returncode == 0
    client.post(f"/allies/{YOUNG_WOLF}/credentials", json={"username": "later", "password": "p"})
    result = psql_file(database_url, ROLLBACK_SQL)
    assert result.returncode == 0, result.stderr
    after = young_wolf(conn)
    assert (after["brand_owner"], after["tags"]) == (before["brand_owner"], before["tags"])
    assert stored_credentials(conn, keyring, YOUNG_WOLF) == ("later", "p")


def test_update_and_rollback_on_the_original_database(upstream_url):
    with psycopg.connect(upstream_url, autocommit=True) as conn:
        conn.execute("DROP TABLE store_changes")  # as in a database that never ran allies
        before = young_wolf(conn)
        assert before["tags"] == {"tag1": "finanzas", "tag2": "movilidad", "tag3": "tecnologia"}
        assert psql_file(upstream_url, UPDATE_SQL).returncode == 0
        after = young_wolf(conn)
        assert after["brand_owner"] == "Old-Wolf"
        assert after["tags"] == {"tag1": "educacion", "tag2": "movilidad", "tag3": "tecnologia"}
        assert conn.execute("SELECT pg_typeof(data)::text FROM stores LIMIT 1").fetchone() == ("json",)
        assert psql_file(upstream_url, ROLLBACK_SQL).returncode == 0
        assert young_wolf(conn) == before


def _open_transaction_with(conn, sql_text: str) -> None:
    """Run a deliverable's statements but leave its transaction open (its COMMIT removed)."""
    body = sql_text.rsplit("COMMIT;", 1)[0]
    conn.execute(body)


def test_a_credentials_write_racing_the_update_is_never_lost(app, database_url, conn, keyring):
    # Order 1: the update holds the row; the POST arrives meanwhile, waits, then applies on top.
    updater = psycopg.connect(database_url, autocommit=True)
    _open_transaction_with(updater, UPDATE_SQL.read_text())
    replies = []
    post = threading.Thread(
        target=lambda: replies.append(
            app.test_client().post(
                f"/allies/{YOUNG_WOLF}/credentials", json={"username": "u1", "password": "p1"}
            )
        )
    )
    post.start()
    post.join(timeout=1.0)
    assert post.is_alive(), "the POST should wait for the update's row lock"
    updater.execute("COMMIT")
    post.join(timeout=10)
    updater.close()
    assert replies[0].status_code == 200
    data = young_wolf(conn)
    assert data["brand_owner"] == "Old-Wolf" and "finanzas" not in data["tags"].values()
    assert stored_credentials(conn, keyring, YOUNG_WOLF) == ("u1", "p1")


def test_an_update_racing_a_credentials_write_keeps_the_credentials(database_url, conn, keyring):
    # Order 2: the credentials write holds the row; psql -f waits, then updates the new version.
    writer = psycopg.connect(database_url)
    attempt = audit.Attempt(actor="test", ally_id=YOUNG_WOLF, client_addr=None, request_id="race")
    credentials.set_credentials(writer, keyring, YOUNG_WOLF, "u2", "p2", attempt)  # transaction left open
    update = subprocess.Popen(
        [str(bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-f", str(UPDATE_SQL), database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(subprocess.TimeoutExpired):
        update.wait(timeout=1.0)  # blocked on the row lock
    writer.commit()
    writer.close()
    _, err = update.communicate(timeout=30)
    assert update.returncode == 0, err
    data = young_wolf(conn)
    assert data["brand_owner"] == "Old-Wolf" and data["tags"]["tag1"] == "educacion"
    assert stored_credentials(conn, keyring, YOUNG_WOLF) == ("u2", "p2")


def test_the_cli_library_update_journals_and_undoes(conn):
    before = young_wolf(conn)
    change = stores.Change(name="Old-Wolf Stores", replace_tags=(("movilidad", "hogar"),))
    outcome = stores.apply_change(conn, YOUNG_WOLF, change, reason="test")
    assert outcome.changes == 2 and outcome.journal_id
    assert young_wolf(conn)["name"] == "Old-Wolf Stores"
    preview = stores.apply_change(conn, YOUNG_WOLF, change, reason="test", dry_run=True)
    assert preview.changes == 0
    stores.undo_last_change(conn, YOUNG_WOLF)
    assert young_wolf(conn) == before
    assert conn.execute("SELECT count(*) FROM store_changes").fetchone() == (2,)
    other = conn.execute("SELECT data FROM stores WHERE id = %s", (BARNES,)).fetchone()[0]
    assert other["name"] == "Barnes Inc"


def _one_line(sql: str) -> str:
    return " ".join(sql.replace("(", " ( ").replace(")", " ) ").split()).rstrip(" ;")


def test_the_case_2_file_and_the_code_run_the_same_statements():
    """One rule, two spellings: sql/02 (values written in, for psql) and allies.stores (bound
    parameters). Written in, the code's statements are the file's, to the letter."""
    runbook = _one_line((ROOT / "sql" / "02_update_store_owner_and_tags.sql").read_text())
    written_in = {"%(id)s": "store", "%(field)s": "'brand_owner'", "%(value)s": "'Old-Wolf'"}
    written_in |= {"%(old)s": "'finanzas'", "%(new)s": "'educacion'"}
    for statement in (stores.SET_TEXT_FIELD, stores.REPLACE_TAG):
        for parameter, value in written_in.items():
            statement = statement.replace(parameter, value)
        assert _one_line(statement) in runbook


def test_the_journal_table_is_defined_alike_in_the_schema_and_the_case_2_file():
    def journal_ddl(path) -> str:
        text = path.read_text()
        start = text.index("CREATE TABLE IF NOT EXISTS store_changes")
        return _one_line(text[start : text.index(";", start)])

    schema = ROOT / "src" / "allies" / "schema.sql"
    assert journal_ddl(schema) == journal_ddl(ROOT / "sql" / "02_update_store_owner_and_tags.sql")


def test_a_cli_update_journals_the_change_in_words_or_the_given_reason(database_url, conn):
    from click.testing import CliRunner

    from allies.cli import main

    env = {"DATABASE_URL": database_url}
    args = [
        "store",
        "update",
        YOUNG_WOLF,
        "--owner",
        "Old-Wolf",
        "--replace-tag",
        "finanzas=educacion",
        "--yes",
    ]
    assert CliRunner().invoke(main, args, env=env).exit_code == 0
    args = ["store", "update", YOUNG_WOLF, "--name", "Young Wolf", "--reason", "ticket 42", "--yes"]
    assert CliRunner().invoke(main, args, env=env).exit_code == 0
    reasons = [row[0] for row in conn.execute("SELECT reason FROM store_changes ORDER BY id")]
    assert reasons == ["allies store update: owner Old-Wolf, tag finanzas -> educacion", "ticket 42"]
