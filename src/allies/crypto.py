"""Encryption of partner credentials: AES-256-GCM envelopes under a ring of versioned keys.

A key ring is written as `KEY_ID:BASE64KEY` entries separated by commas or new lines; the first
entry is the active key (used to encrypt), every entry can decrypt. The ally id is bound to each
ciphertext as associated data, so a ciphertext copied onto another ally fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .entries import named_entries
from .failures import ConfigError

ALGORITHM = "AES-256-GCM"
ENVELOPE_VERSION = 1
NONCE_BYTES = 12  # 96-bit nonce, fresh and random for every encryption
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
AAD_PREFIX = b"allies/credentials/v1:"
CHECK_MESSAGE = b"allies/key-check/v1"


class DecryptionError(Exception):
    """A ciphertext cannot be opened: unknown key, wrong ally, or tampered data."""


@dataclass(frozen=True)
class KeyRing:
    """Versioned AES-256 keys: `active` encrypts, all of `keys` decrypt."""

    keys: dict[str, bytes]
    active: str

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        """Read `KEY_ID:BASE64KEY` entries; `source` names the variable or file in errors."""
        keys: dict[str, bytes] = {}
        entries = named_entries(text, source, name=KEY_ID_PATTERN, shape="KEY_ID:BASE64KEY", noun="keys")
        for key_id, encoded in entries.items():
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise ConfigError(f"{source}: key {key_id!r} is not valid base64") from None
            if len(key) != 32:
                raise ConfigError(f"{source}: key {key_id!r} must be 32 bytes (AES-256)")
            keys[key_id] = key
        return cls(keys=keys, active=next(iter(keys)))

    def check_value(self, key_id: str) -> str:
        """A value that identifies the key without revealing it (HMAC-SHA256 of a constant under the
        key): instances compare it to know they hold the same key under the same id."""
        digest = hmac.new(self.keys[key_id], CHECK_MESSAGE, hashlib.sha256).digest()
        return base64.b64encode(digest[:16]).decode()

    def derive(self, purpose: bytes) -> bytes:
        """A 32-byte key for another use (`purpose` names it), derived from the active key with
        HKDF: every instance sharing the ring derives the same one; it says nothing of the key."""
        hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"allies/derived/v1:" + purpose)
        return hkdf.derive(self.keys[self.active])

    def encrypt(self, ally_id: str, plaintext: bytes) -> dict:
        """Seal `plaintext` for `ally_id` under the active key; returns the stored envelope."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = _cipher(self.keys[self.active]).encrypt(nonce, plaintext, _aad(ally_id))
        return {
            "version": ENVELOPE_VERSION,
            "alg": ALGORITHM,
            "kid": self.active,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode(),
        }

    def decrypt(self, ally_id: str, envelope: dict) -> bytes:
        """Open an envelope made by `encrypt` for the same ally."""
        key = self.keys.get(str(envelope.get("kid")))
        if key is None:
            raise DecryptionError(f"credentials of ally {ally_id} use an unknown key id")
        try:
            nonce = base64.b64decode(envelope["nonce"], validate=True)
            ciphertext = base64.b64decode(envelope["ciphertext"], validate=True)
            return _cipher(key).decrypt(nonce, ciphertext, _aad(ally_id))
        except (InvalidTag, KeyError, TypeError, ValueError, binascii.Error):
            raise DecryptionError(
                f"credentials of ally {ally_id} cannot be decrypted (wrong ally or tampered)"
            ) from None


@functools.lru_cache(maxsize=16)
def _cipher(key: bytes) -> AESGCM:
    """One AESGCM object per key: its key schedule is computed once, not per request."""
    return AESGCM(key)


def _aad(ally_id: str) -> bytes:
    return AAD_PREFIX + ally_id.encode()


def new_key_entry(key_id: str | None = None) -> str:
    """A fresh random key as a `KEY_ID:BASE64KEY` entry for the configuration."""
    key_id = key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"
