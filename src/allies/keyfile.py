"""Where the key ring comes from: ALLIES_ENCRYPTION_KEYS, the file ALLIES_ENCRYPTION_KEYS_FILE
names, or (the local default, no setting) `encryption.keys` under $ALLIES_HOME, which the CLI
generates on a home's first start. The app itself never writes it.

Policy over `crypto` (which knows keys, not settings or files) and `config`."""

from __future__ import annotations

import os
from pathlib import Path

from .config import Settings
from .crypto import KeyRing, new_key_entry
from .failures import ConfigError

KEY_FILE_HEADER = "# allies encryption keys: KEY_ID:BASE64KEY, the first one is active.\n"


def load_keyring(settings: Settings) -> KeyRing:
    """The configured key ring: ALLIES_ENCRYPTION_KEYS, else the key file."""
    if settings.keyring is not None:
        return settings.keyring
    path = settings.encryption_keys_file or settings.default_key_file
    try:
        text = path.read_text()
    except OSError as exc:
        hint = (
            "; the first `allies serve` (make run) generates it" if path == settings.default_key_file else ""
        )
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror}{hint}") from None
    return KeyRing.parse(text, str(path))


def generates_a_key(settings: Settings) -> bool:
    """Whether `create_local_key` would generate a new key (the local default, first start of
    this home)."""
    no_setting = settings.keyring is None and settings.encryption_keys_file is None
    return no_setting and not settings.default_key_file.exists()


def create_local_key(settings: Settings) -> Path | None:
    """Generate the home's key file (mode 0600) in the local default when it is missing; its path
    when this call made it, else None (a setting names the ring, the file exists, or another
    process made it first)."""
    if not generates_a_key(settings):
        return None
    path = settings.default_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as handle:
        handle.write(KEY_FILE_HEADER)
        handle.write(new_key_entry() + "\n")
    return path


def keyring_source(settings: Settings) -> str:
    """Where the key ring comes from, for people: the variable, or the key file to back up."""
    if settings.keyring is not None:
        return "ALLIES_ENCRYPTION_KEYS"
    if settings.encryption_keys_file:
        return f"{settings.encryption_keys_file} (ALLIES_ENCRYPTION_KEYS_FILE)"
    return f"{settings.default_key_file} (generated here: back it up)"
