"""Text from outside (request paths, log lines, file names) made safe to store and to show.

Such text may carry control characters that forge a line on a terminal or in a report (a newline,
an escape sequence), format characters that reorder or hide what follows (U+202E turns the rest
of a terminal line around), or a NUL that PostgreSQL's text type cannot hold. `printable` escapes them,
so one record stays one line. It is idempotent (text already escaped passes unchanged), so text
escaped when stored can be escaped again when shown.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, lone surrogates, the Unicode line and paragraph separators, and every
# format character (category Cf: bidi controls, zero-width characters, tags), listed as ranges so
# that importing this module costs nothing (tests/test_hostile.py holds the list to unicodedata).
FORMAT_CHARACTERS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNPRINTABLE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\u2028\\u2029{FORMAT_CHARACTERS}]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every control and format character written as an escape: \\x0a, \\x1b,
    \\u2028, \\u202e."""
    return _UNPRINTABLE.sub(_escape, text)
