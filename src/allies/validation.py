"""Validation of what clients send: ally ids, credentials bodies, and the times given to the CLI.
Errors name the exact problem."""

from __future__ import annotations

import re
from datetime import UTC, datetime

ALLY_ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
MAX_USERNAME_CHARS = 256
MAX_PASSWORD_CHARS = 1024


class Rejected(Exception):
    """The request cannot be carried out as sent; `detail` says precisely why (no secrets)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AllyNotFound(Rejected):
    """No store has this id."""


def parse_ally_id(raw: str) -> str:
    """The ally id in canonical form (a lowercase UUID), or Rejected."""
    if not ALLY_ID_PATTERN.match(raw):
        raise Rejected("malformed ally id: expected a UUID like 1f585fc9-4926-468c-a728-eb34d80e9ea1")
    return raw.lower()


def parse_body(body: object) -> tuple[str, str]:
    """(username, password) from a decoded JSON body; `user` is accepted for `username`."""
    if not isinstance(body, dict):
        raise Rejected("the JSON body must be an object with username and password")
    if "username" in body and "user" in body:
        raise Rejected("send either username or user, not both")
    username_key = "username" if "username" in body else "user"
    username = _required_text(body, username_key, "username", MAX_USERNAME_CHARS)
    password = _required_text(body, "password", "password", MAX_PASSWORD_CHARS)
    return username, password


def _required_text(body: dict, key: str, label: str, max_chars: int) -> str:
    if key not in body or body[key] is None:
        raise Rejected(f"missing field: {label}")
    value = body[key]
    if not isinstance(value, str):
        raise Rejected(f"field {label} must be a string")
    if not value.strip():
        raise Rejected(f"empty field: {label}")
    if len(value) > max_chars:
        raise Rejected(f"field {label} is longer than {max_chars} characters")
    return value


def parse_time(text: str) -> datetime:
    """ISO 8601 (`2023-11-02T22:30:00-05:00`, a date, or without zone: UTC) or the log's format."""
    for parse in (datetime.fromisoformat, lambda t: datetime.strptime(t, "%d/%b/%Y:%H:%M:%S %z")):
        try:
            value = parse(text.strip())
        except ValueError:
            continue
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raise Rejected(f"cannot read the time {text!r}: use ISO 8601, e.g. 2023-11-02T22:30:00-05:00")
