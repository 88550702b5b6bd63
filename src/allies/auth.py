"""Who is calling: bearer tokens of the support engineers, checked in constant time.

ALLIES_API_TOKENS (or the file named by ALLIES_API_TOKENS_FILE) maps people to tokens:
`NAME:TOKEN` entries separated by commas or new lines. With no tokens configured the API is open
to whoever reaches it, which `allies serve` only allows on a loopback address.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from pathlib import Path

from .entries import named_entries
from .failures import ConfigError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_TOKEN_CHARS = 16
LOCAL_ACTOR = "local"
ANONYMOUS_ACTOR = "anonymous"


def parse_tokens(text: str, source: str) -> dict[str, str]:
    """{name: token} from `NAME:TOKEN` entries; `source` names the variable or file in errors."""
    tokens = named_entries(text, source, name=NAME_PATTERN, shape="NAME:TOKEN", noun="tokens")
    for name, token in tokens.items():
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise ConfigError(
                f"{source}: the token of {name!r} must be {MIN_TOKEN_CHARS}+ characters, no spaces"
            )
    return tokens


def load_tokens(inline: str | None, file: Path | None) -> dict[str, str]:
    """The configured tokens, or {} when none are configured."""
    if inline:
        return parse_tokens(inline, "ALLIES_API_TOKENS")
    if file is None:
        return {}
    try:
        return parse_tokens(file.read_text(), str(file))
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {file}: {exc.strerror}") from None


def identify(tokens: dict[str, str], authorization: str | None) -> str | None:
    """The name whose token the `Authorization: Bearer` header carries, else None.

    Every configured token is compared, each in constant time, so the time taken says nothing
    about which token (or how much of one) matched."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return None
    presented_bytes, found = presented.strip().encode(), None
    for name, token in tokens.items():
        if hmac.compare_digest(presented_bytes, token.encode()):
            found = name
    return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
