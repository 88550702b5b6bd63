"""Text from outside (request paths, log lines, file names) made safe to store and to show.

Such text may carry control characters that forge a line on a terminal or in a report (a newline,
an escape sequence), or a NUL that PostgreSQL's text type cannot hold. `printable` escapes them,
so one record stays one line. It is idempotent (text already escaped passes unchanged), so text
escaped when stored can be escaped again when shown.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, lone surrogates, and the Unicode line and paragraph separators.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character written as an escape: \\x0a, \\x1b, \\u2028."""
    return _UNPRINTABLE.sub(_escape, text)
