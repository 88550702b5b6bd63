"""AES-256-GCM envelopes: round trip, binding to the ally, tamper detection, key ring config."""

from __future__ import annotations

import base64
import stat

import pytest
from conftest import BARNES, YOUNG_WOLF

from allies.config import Settings
from allies.crypto import DecryptionError, KeyRing, new_key_entry
from allies.failures import ConfigError
from allies.keyfile import create_local_key, load_keyring


def test_round_trip_returns_the_plaintext(keyring):
    envelope = keyring.encrypt(BARNES, b"secret")
    assert envelope["kid"] == "test-key-1" and envelope["alg"] == "AES-256-GCM"
    assert b"secret" not in base64.b64decode(envelope["ciphertext"])
    assert keyring.decrypt(BARNES, envelope) == b"secret"


def test_each_encryption_uses_a_fresh_nonce(keyring):
    nonces = {keyring.encrypt(BARNES, b"same")["nonce"] for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(base64.b64decode(n)) == 12 for n in nonces)


def test_a_ciphertext_copied_to_another_ally_does_not_decrypt(keyring):
    envelope = keyring.encrypt(BARNES, b"secret")
    with pytest.raises(DecryptionError, match="wrong ally or tampered"):
        keyring.decrypt(YOUNG_WOLF, envelope)


def test_a_tampered_ciphertext_does_not_decrypt(keyring):
    envelope = keyring.encrypt(BARNES, b"secret")
    raw = bytearray(base64.b64decode(envelope["ciphertext"]))
    raw[0] ^= 1
    with pytest.raises(DecryptionError):
        keyring.decrypt(BARNES, {**envelope, "ciphertext": base64.b64encode(raw).decode()})


def test_an_unknown_key_id_is_reported(keyring):
    envelope = keyring.encrypt(BARNES, b"secret")
    with pytest.raises(DecryptionError, match="unknown key id"):
        keyring.decrypt(BARNES, {**envelope, "kid": "gone"})


def test_the_first_key_encrypts_and_every_key_decrypts():
    old_entry = new_key_entry("old")
    envelope = KeyRing.parse(old_entry, "test").encrypt(BARNES, b"secret")
    ring = KeyRing.parse(f"{new_key_entry('new')},{old_entry}", "test")
    assert ring.active == "new"
    assert ring.decrypt(BARNES, envelope) == b"secret"
    assert ring.encrypt(BARNES, b"x")["kid"] == "new"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no keys found"),
        ("nocolon", "KEY_ID:BASE64KEY"),
        ("bad id!:AAAA", "KEY_ID:BASE64KEY"),
        ("k1:not base64!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
    ],
)
def test_malformed_key_configuration_names_the_variable(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        KeyRing.parse(text, "ALLIES_ENCRYPTION_KEYS")
    assert str(info.value).startswith("ALLIES_ENCRYPTION_KEYS")


def test_duplicate_key_ids_are_refused():
    entry = new_key_entry("same")
    with pytest.raises(ConfigError, match="appears twice"):
        KeyRing.parse(f"{entry}\n{entry}", "file")


def test_local_default_generates_one_private_key_file_only_when_asked(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(ConfigError, match="the first `allies serve` .* generates it"):
        load_keyring(settings)  # what the app does: it never writes the key
    assert create_local_key(settings) == settings.default_key_file  # what the CLI does before serving
    first = load_keyring(settings)
    key_file = settings.default_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert create_local_key(settings) is None  # reused, not regenerated
    assert load_keyring(settings) == first
    assert capsys.readouterr().err == ""  # the library prints nothing: the CLI says it made a key


def test_the_app_factory_starts_and_writes_nothing(tmp_path):
    from allies.web.app import create_app

    with pytest.raises(ConfigError, match="needs a database URL"):
        create_app(Settings(home=tmp_path / "home"))  # no embedded server is started for it
    assert not (tmp_path / "home").exists()


def test_a_named_key_file_is_read_and_never_created(tmp_path):
    path = tmp_path / "keys"
    with pytest.raises(ConfigError, match="cannot read the key file"):
        load_keyring(Settings(home=tmp_path, encryption_keys_file=path))
    path.write_text("# comment, with a comma\n" + new_key_entry("filekey") + "\n")
    assert load_keyring(Settings(home=tmp_path, encryption_keys_file=path)).active == "filekey"
