"""One key ring per database: an instance whose keys do not fit the database's is refused, in one
line, before it serves; a home never generates its own key against a database that has credentials."""

from __future__ import annotations

import stat
import subprocess

import psycopg
import pytest
from conftest import BARNES, TEST_KEYS, YOUNG_WOLF, allies_env, free_port, make_app
from helpers.http import wait_for_http

from allies import keys
from allies.crypto import KeyRing, new_key_entry
from allies.web.services import services

OTHER_SAME_ID = new_key_entry("test-key-1")  # another key under the id of TEST_KEYS
NEW_KEY = new_key_entry("new-key")


def ring(text: str) -> KeyRing:
    return KeyRing.parse(text, "test")


def write(settings, keyring_text: str, ally: str) -> None:
    app = make_app(settings.__class__(**{**settings.__dict__, "keyring": ring(keyring_text)}))
    try:
        response = app.test_client().post(
            f"/allies/{ally}/credentials", json={"username": "u", "password": "p"}
        )
        assert response.status_code == 200
    finally:
        services(app).close()


def test_the_first_instance_records_its_keys_and_the_same_ring_is_accepted(conn):
    keys.enforce(conn, ring(TEST_KEYS))
    assert set(keys.known_keys(conn)) == {"test-key-1"}
    keys.enforce(conn, ring(TEST_KEYS))  # a second replica with the shared ring
    assert TEST_KEYS.split(":")[1] not in str(keys.known_keys(conn))  # a check value, never the key


def test_another_key_under_a_known_id_is_refused(conn):
    keys.enforce(conn, ring(TEST_KEYS))
    with pytest.raises(keys.KeyRingMismatch, match="key id test-key-1 of this instance is not the key"):
        keys.enforce(conn, ring(OTHER_SAME_ID))


def test_a_ring_without_the_key_of_stored_credentials_is_refused(conn, settings):
    keys.enforce(conn, ring(TEST_KEYS))
    write(settings, TEST_KEYS, BARNES)
    with pytest.raises(keys.KeyRingMismatch, match="lacks key id test-key-1, which protects 1 stored"):
        keys.enforce(conn, ring(NEW_KEY))


def test_a_key_that_still_protects_a_kept_version_is_needed(conn, settings):
    keys.enforce(conn, ring(TEST_KEYS))
    write(settings, TEST_KEYS, BARNES)  # version 1 under the old key
    rotated = f"{NEW_KEY},{TEST_KEYS}"
    write(settings, rotated, BARNES)  # version 2, current, under the new key
    assert keys.usage(conn) == {"new-key": 1} and keys.version_usage(conn) == {"new-key": 1, "test-key-1": 1}
    with pytest.raises(
        keys.KeyRingMismatch, match="lacks key id test-key-1, which protects 0 stored credentials and 1 kept"
    ):
        keys.enforce(conn, ring(NEW_KEY))  # the old key is not removable yet
    keys.enforce(conn, ring(rotated))


def test_rotation_across_instances_adds_a_key_and_old_rings_are_refused_once_it_is_used(conn, settings):
    keys.enforce(conn, ring(TEST_KEYS))
    write(settings, TEST_KEYS, BARNES)
    rotated = f"{NEW_KEY},{TEST_KEYS}"
    keys.enforce(conn, ring(rotated))  # the new key first, the old one still decrypts: accepted
    write(settings, rotated, YOUNG_WOLF)
    assert set(keys.known_keys(conn)) == {"test-key-1", "new-key"}
    with pytest.raises(keys.KeyRingMismatch, match="lacks key id new-key"):
        keys.enforce(conn, ring(TEST_KEYS))  # could not read what the rotated instances wrote


@pytest.mark.parametrize("configured", ["no key (a home of its own)", "a foreign key"])
def test_a_second_instance_with_its_own_key_is_refused_before_serving(
    database_url, settings, tmp_path, configured
):
    write(settings, TEST_KEYS, BARNES)  # the first instance wrote a credential with its ring
    home = tmp_path / "second-home"
    extra = {} if configured.startswith("no key") else {"ALLIES_ENCRYPTION_KEYS": NEW_KEY}
    env = allies_env(DATABASE_URL=database_url, ALLIES_HOME=str(home), **extra)
    result = subprocess.run(
        ["allies", "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    [refusal] = [line for line in result.stderr.splitlines() if not line.startswith("allies: database ready")]
    assert "test-key-1" in refusal and "ALLIES_ENCRYPTION_KEYS" in refusal
    assert "serving on" not in result.stderr and not (home / "encryption.keys").exists()


def test_a_ring_sharing_no_key_with_the_database_is_refused_even_before_any_credential(conn):
    keys.enforce(conn, ring(TEST_KEYS))  # the first instance, nothing written yet
    with pytest.raises(
        keys.KeyRingMismatch, match="none of this instance's keys .new-key. is one the database knows"
    ):
        keys.enforce(conn, ring(NEW_KEY))  # a second home that generated its own key


def test_credentials_objects_without_a_key_id_neither_block_serving_nor_a_first_key(conn):
    # Foreign data (e.g. written by another tool): no ring can open it, `allies keys status` lists it.
    conn.execute("""UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials}', '{"user": "x"}')""")
    assert keys.usage(conn) == {keys.NO_KEY_ID: conn.execute("SELECT count(*) FROM stores").fetchone()[0]}
    keys.refuse_a_new_key(conn)  # does not refuse
    keys.enforce(conn, ring(TEST_KEYS))
    keys.enforce(conn, ring(TEST_KEYS))  # and again, as the next replica


@pytest.mark.slow  # two servers started and stopped
def test_the_first_serve_of_a_home_generates_its_key_and_says_so_once(database_url, tmp_path):
    home = tmp_path / "fresh-home"
    env = allies_env(DATABASE_URL=database_url, ALLIES_HOME=str(home))
    said = []
    for _ in range(2):
        port = free_port()
        process = subprocess.Popen(
            ["allies", "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", process=process)
        finally:
            process.terminate()
            said.append(process.communicate(timeout=30)[1])
    key_file = home / "encryption.keys"
    assert f"generated a new encryption key in {key_file} (mode 0600); back it up" in said[0]
    assert "generated a new encryption key" not in said[1]  # the same key, reused
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with psycopg.connect(database_url) as conn:  # and the database knows it now
        assert KeyRing.parse(key_file.read_text(), str(key_file)).active in keys.known_keys(conn)
