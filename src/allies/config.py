"""Settings read from the environment, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .failures import ConfigError

if TYPE_CHECKING:
    from .crypto import KeyRing
    from .ratelimit import Limit

DEFAULT_API_PORT = 4000
DEFAULT_API_URL = f"http://127.0.0.1:{DEFAULT_API_PORT}"
MAX_CREDENTIAL_VERSIONS = 1000


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _int_env(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not 0 < value < 65536:
        raise ConfigError(f"{name} must be between 1 and 65535, got {value}")
    return value


def _count_env(name: str, default: int, maximum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ConfigError(f"{name} must be a whole number from 1 to {maximum}, got {raw!r}")
    return int(raw)


def _flag_env(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _proxies_env(name: str) -> int:
    raw = os.environ.get(name, "").strip() or "0"
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError(f"{name} must be the number of proxies in front of the API (0-10), got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """Everything the service and the CLI read from the environment, parsed once (`from_env`):
    a malformed value fails there, naming its variable, before anything starts."""

    home: Path = field(default_factory=lambda: Path(".allies"))
    database_url: str | None = None  # None: the embedded PostgreSQL, which the CLI starts
    db_port: int | None = None  # unset: the port the home's embedded server runs on, else 5432
    keyring: KeyRing | None = None  # None: the key file (ALLIES_ENCRYPTION_KEYS_FILE, or under home)
    encryption_keys_file: Path | None = None
    api_tokens: dict[str, str] = field(default_factory=dict)  # {name: token}; empty: no authentication
    write_rate_limit: Limit | None = None
    trusted_proxies: int = 0  # proxies in front whose X-Forwarded-For names the client (0: none trusted)
    api_token: str | None = None  # the token the CLI sends to the API (ALLIES_TOKEN)
    log_file: Path = field(default_factory=lambda: Path("log/server.log"))
    credential_versions: int = 10  # envelopes kept per ally; older ones are destroyed
    require_if_match: bool = False  # every credentials write must name the version it read
    max_body_bytes: int = 16 * 1024
    db_timeout_seconds: float = 1.0  # the longest a request waits for the database: a 503 within ~1 s

    @classmethod
    def from_env(cls) -> Settings:
        """Read ALLIES_HOME, DATABASE_URL, DB_PORT, ALLIES_ENCRYPTION_KEYS[_FILE], ALLIES_API_TOKENS[_FILE],
        ALLIES_WRITE_RATE_LIMIT, ALLIES_TRUSTED_PROXIES, ALLIES_TOKEN, ALLIES_LOG_FILE,
        ALLIES_CREDENTIAL_VERSIONS, ALLIES_REQUIRE_IF_MATCH."""
        keys = _env("ALLIES_ENCRYPTION_KEYS")
        keys_file, tokens_file = _env("ALLIES_ENCRYPTION_KEYS_FILE"), _env("ALLIES_API_TOKENS_FILE")
        return cls(
            home=Path(_env("ALLIES_HOME") or ".allies").absolute(),
            database_url=_env("DATABASE_URL"),
            db_port=_int_env("DB_PORT", None),
            keyring=_parse_keyring(keys) if keys else None,
            encryption_keys_file=Path(keys_file) if keys_file else None,
            api_tokens=_parse_tokens(_env("ALLIES_API_TOKENS"), Path(tokens_file) if tokens_file else None),
            write_rate_limit=_parse_limit(_env("ALLIES_WRITE_RATE_LIMIT")),
            trusted_proxies=_proxies_env("ALLIES_TRUSTED_PROXIES"),
            api_token=_env("ALLIES_TOKEN"),
            log_file=Path(_env("ALLIES_LOG_FILE") or "log/server.log"),
            credential_versions=_count_env("ALLIES_CREDENTIAL_VERSIONS", 10, MAX_CREDENTIAL_VERSIONS),
            require_if_match=_flag_env("ALLIES_REQUIRE_IF_MATCH"),
        )

    @property
    def embedded(self) -> bool:
        """True when no DATABASE_URL is given, so the embedded PostgreSQL is used."""
        return self.database_url is None

    @property
    def default_key_file(self) -> Path:
        return self.home / "encryption.keys"


# The parsers live with what they parse (they import only the leaves `failures` and `entries`, never
# this module). They are imported when a value is there to parse: a command whose settings are
# unset (the log triage) loads neither the cryptography library (~60 ms) nor the database driver.
def _parse_keyring(text: str) -> KeyRing:
    from .crypto import KeyRing

    return KeyRing.parse(text, "ALLIES_ENCRYPTION_KEYS")


def _parse_tokens(inline: str | None, file: Path | None) -> dict[str, str]:
    if inline is None and file is None:
        return {}
    from .auth import load_tokens

    return load_tokens(inline, file)


def _parse_limit(text: str | None) -> Limit | None:
    if text is None:
        return None
    from .ratelimit import Limit

    return Limit.parse(text, "ALLIES_WRITE_RATE_LIMIT")
