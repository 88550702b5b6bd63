"""Validation of what clients send: ally ids, credentials bodies, and the times given to the CLI.
Errors name the exact problem."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .failures import InputProblem
from .text import FORMAT_CHARACTERS

# An ally id is any "string identification" the original's VARCHAR column can hold, within reason:
# 1-128 characters, no whitespace, control or format characters (bidi controls, zero-width
# characters: an id must read as what it is) or "/". A UUID, in any case, is the same
# ally as its lowercase form (the form stored); any other id is used as it is.
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
MANGLED_UUID = re.compile(r"[0-9a-f]{4,}(-[0-9a-f]+){2,5}", re.I)  # hex groups and dashes: meant as a UUID
MAX_ALLY_ID_CHARS = 128
FORBIDDEN_IN_ID = re.compile(rf"[\s\x00-\x1f\x7f-\x9f/\ud800-\udfff{FORMAT_CHARACTERS}]")
# What a credential may not contain: it is sent on to a partner, so it must encode as UTF-8
# (no lone surrogates) and carry no control characters (NUL truncates C strings downstream).
FORBIDDEN_IN_CREDENTIAL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
MAX_USERNAME_CHARS = 256
MAX_PASSWORD_CHARS = 1024
MAX_VERSION = 2**31 - 1  # a credentials version number (PostgreSQL integer)


class Rejected(InputProblem):
    """The request cannot be carried out as sent; `detail` says precisely why (no secrets)."""

    status = 400  # what the web faces answer

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AllyNotFound(Rejected):
    """No store has this id."""

    @classmethod
    def of(cls, ally_id: str, *, then: str = "") -> AllyNotFound:
        """The failure for `ally_id` told to a person (the CLI, the console), saying so when the id
        is a UUID mangled in copying (a digit lost or added): a well-formed id nobody has is not the
        same mistake as a broken one. The API's answers keep the contract's exact text."""
        hint = ""
        if MANGLED_UUID.fullmatch(ally_id) and not UUID_PATTERN.fullmatch(ally_id):
            groups = "-".join(str(len(group)) for group in ally_id.split("-"))
            hint = f" (not a well-formed UUID: its groups have {groups} digits, a UUID's 8-4-4-4-12)"
        return cls(f"no store has id {ally_id}{hint}{then}")


class BodyTooLarge(Rejected):
    """A request body over the size limit."""

    status = 413


def canonical_ally_id(raw: str) -> str:
    """The one spelling of an ally id that is stored and recorded: a UUID in lowercase, any other id
    as it is. Every record (stores, audit, journal, triage) names an ally by this."""
    return raw.lower() if UUID_PATTERN.fullmatch(raw) else raw


def parse_ally_id(raw: str) -> str:
    """The ally id in canonical form (`canonical_ally_id`), or Rejected."""
    if UUID_PATTERN.fullmatch(raw):
        return canonical_ally_id(raw)
    if not raw:
        raise Rejected("malformed ally id: it is empty")
    if len(raw) > MAX_ALLY_ID_CHARS:
        raise Rejected(f"malformed ally id: longer than {MAX_ALLY_ID_CHARS} characters")
    forbidden = FORBIDDEN_IN_ID.search(raw)
    if forbidden:
        raise Rejected(f"malformed ally id: it contains {code_point(forbidden.group())}")
    return raw


def is_valid_ally_id(raw: str) -> bool:
    try:
        parse_ally_id(raw)
    except Rejected:
        return False
    return True


def code_point(char: str) -> str:
    """A character named without printing it: U+000A."""
    return f"U+{ord(char):04X}"


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


MAX_STORE_TEXT_CHARS = 200  # a store's name or owner, as the CLI, the console and the SQL case write it
FORBIDDEN_IN_STORE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def parse_store_text(value: str, label: str, max_chars: int = MAX_STORE_TEXT_CHARS) -> str:
    """A name, an owner or a tag as a store may hold it: not blank, at most `max_chars`, no control
    characters (a NUL PostgreSQL cannot store, an escape sequence that forges a terminal line)."""
    if not value.strip():
        raise Rejected(f"empty {label}")
    if len(value) > max_chars:
        raise Rejected(f"the {label} is longer than {max_chars} characters")
    forbidden = FORBIDDEN_IN_STORE_TEXT.search(value)
    if forbidden:
        raise Rejected(f"the {label} contains {code_point(forbidden.group())}")
    return value


def parse_restore_body(body: object) -> int:
    """The version to restore from a decoded JSON body: {"version": N}, N a whole number from 1."""
    version = body.get("version") if isinstance(body, dict) else None
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise Rejected("the JSON body must be an object with version: the whole number of a kept version")
    return version


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
    forbidden = FORBIDDEN_IN_CREDENTIAL.search(value)
    if forbidden:  # named by code point: the value itself is a secret
        raise Rejected(f"field {label} contains {code_point(forbidden.group())}, which cannot be sent on")
    return value


def parse_time(text: str) -> datetime:
    """ISO 8601 (`2023-11-02T22:30:00-05:00`, a date, or without zone: UTC) or the log's format."""
    for parse in (datetime.fromisoformat, lambda t: datetime.strptime(t, "%d/%b/%Y:%H:%M:%S %z")):
        try:
            value = parse(text.strip())
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except ValueError:
            continue
        except OverflowError:  # a time at the calendar's edge that UTC cannot hold (year 0 or 10000)
            raise Rejected(f"the time {text!r} is outside the years 1-9999 once in UTC") from None
    raise Rejected(f"cannot read the time {text!r}: use ISO 8601, e.g. 2023-11-02T22:30:00-05:00")
