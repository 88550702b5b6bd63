"""List settings written as text: entries separated by commas or new lines, `#` starting a
comment, and `NAME:VALUE` entries (the API's tokens, the key ring). One reader for all of them."""

from __future__ import annotations

import re

from .failures import ConfigError


def entries(text: str) -> list[str]:
    """The entries of a list setting: separated by commas or new lines, `#` starts a comment."""
    lines = [line.partition("#")[0] for line in text.splitlines()]
    return [entry for entry in (e.strip() for e in ",".join(lines).split(",")) if entry]


def named_entries(text: str, source: str, *, name: re.Pattern[str], shape: str, noun: str) -> dict[str, str]:
    """{name: value} from `NAME:VALUE` entries, in their order. `source` names the variable or file,
    `shape` the expected form (`NAME:TOKEN`), `noun` what the entries are (`tokens`), in errors."""
    found: dict[str, str] = {}
    for entry in entries(text):
        key, sep, value = entry.partition(":")
        if not sep or not name.match(key):
            raise ConfigError(f"{source}: each entry must look like {shape}")
        if key in found:
            raise ConfigError(f"{source}: {key!r} appears twice")
        found[key] = value
    if not found:
        raise ConfigError(f"{source}: no {noun} found")
    return found
