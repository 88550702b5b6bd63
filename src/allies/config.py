"""Settings read from the environment, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_API_PORT = 4000
DEFAULT_API_URL = f"http://127.0.0.1:{DEFAULT_API_PORT}"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def entries(text: str) -> list[str]:
    """The entries of a list setting: separated by commas or new lines, `#` starts a comment."""
    lines = [line.partition("#")[0] for line in text.splitlines()]
    return [entry for entry in (e.strip() for e in ",".join(lines).split(",")) if entry]


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


@dataclass(frozen=True)
class Settings:
    """Everything the service and the CLI read from the environment."""

    home: Path = field(default_factory=lambda: Path(".allies"))
    database_url: str | None = None
    db_port: int | None = None  # unset: the port the home's embedded server runs on, else 5432
    encryption_keys: str | None = None
    encryption_keys_file: Path | None = None
    api_tokens: str | None = None
    api_tokens_file: Path | None = None
    write_rate_limit: str | None = None
    log_file: Path = field(default_factory=lambda: Path("log/server.log"))
    max_body_bytes: int = 16 * 1024
    db_timeout_seconds: float = 1.0  # the longest a request waits for the database: a 503 within ~1 s

    @classmethod
    def from_env(cls) -> Settings:
        """Read ALLIES_HOME, DATABASE_URL, DB_PORT, ALLIES_ENCRYPTION_KEYS[_FILE], ALLIES_API_TOKENS[_FILE],
        ALLIES_LOG_FILE."""
        keys_file = os.environ.get("ALLIES_ENCRYPTION_KEYS_FILE", "").strip()
        tokens_file = os.environ.get("ALLIES_API_TOKENS_FILE", "").strip()
        return cls(
            home=Path(os.environ.get("ALLIES_HOME", "").strip() or ".allies").absolute(),
            database_url=os.environ.get("DATABASE_URL", "").strip() or None,
            db_port=_int_env("DB_PORT", None),
            encryption_keys=os.environ.get("ALLIES_ENCRYPTION_KEYS", "").strip() or None,
            encryption_keys_file=Path(keys_file) if keys_file else None,
            api_tokens=os.environ.get("ALLIES_API_TOKENS", "").strip() or None,
            api_tokens_file=Path(tokens_file) if tokens_file else None,
            write_rate_limit=os.environ.get("ALLIES_WRITE_RATE_LIMIT", "").strip() or None,
            log_file=Path(os.environ.get("ALLIES_LOG_FILE", "").strip() or "log/server.log"),
        )

    @property
    def embedded(self) -> bool:
        """True when no DATABASE_URL is given, so the embedded PostgreSQL is used."""
        return self.database_url is None

    @property
    def default_key_file(self) -> Path:
        return self.home / "encryption.keys"
