"""Access-log lines in bulk: what one block of whole lines says.

The grammar is Apache common / combined (the app's own log/server.log is common format), plus
the quirks of the original challenge's server log: a space inside the time zone, `- 0500`, and an
extra field after the size, `404 - 4729`. Every line is either valid or malformed; nothing is
guessed.

Where the time goes: checking every line against the grammar. The scanning core (`_logscan.c`, C,
one pass over the bytes without the GIL) checks the plain lines (PLAIN below: nearly all of them)
and counts their statuses; Python's `re` reads only the lines it hands back: those that are not
plain (quirks, odd dates, garbage) and the plain ones whose request mentions /allies/ (about 1 %).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from ..validation import canonical_ally_id
from . import _logscan

MALFORMED_SAMPLES = 5
MAX_LINE_BYTES = 1024 * 1024  # a longer line is malformed (allies.triage never reads one whole)
MAX_CLIENTS_LISTED = 20
_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
# A date the calendar has: 31/Feb, day 32, year 0 and such make a line malformed. The grammar checks
# day and month; a line whose time still is not a real one once in UTC (29/Feb of a common year, a
# time past 9999 or before year 1, a leap second) is malformed too, by the full check of the lines
# that are not plain (`_read_whole`), where those dates go.
_DAY_MONTH = (
    rf"(?:(?:0[1-9]|1[0-9]|2[0-9])/{_MONTH}|30/(?:Jan|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"|31/(?:Jan|Mar|May|Jul|Aug|Oct|Dec))"
)
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_TIME = rf"{_DAY_MONTH}/{_YEAR}:(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)"
# The plain grammar leaves out the dates whose time must be computed to be trusted, and second 60.
_PLAIN_DAY_MONTH = (
    rf"(?:(?:0[1-9]|1[0-9]|2[0-8])/{_MONTH}|(?:29|30)/(?:Jan|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"|31/(?:Jan|Mar|May|Jul|Aug|Oct|Dec))"
)
_PLAIN_YEAR = r"(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8]|0[1-9][0-9]{2}|00[1-9][0-9]|000[2-9])"
_PLAIN_TIME = rf"{_PLAIN_DAY_MONTH}/{_PLAIN_YEAR}:(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
_ZONE = r"(?:0[0-9]|1[0-4])[0-5][0-9]"  # UTC offsets exist from -12:00 to +14:00
# host ident user [time zone] "request" status size [anything: combined format's referer/agent,
# or the original log's extra field]. `- 0500`: the original log's zone quirk.
LINE = (
    r"^(?P<host>[^ ]+) [^ ]+ [^ ]+ "
    rf"\[(?P<time>{_TIME}) ?(?P<sign>[-+]) ?(?P<zone>{_ZONE})\] "
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>[1-5][0-9]{2}) (?:[0-9]+|-)(?: .*)?\r?$'
)
# Most lines, and only valid ones: no quote or backslash before the request or inside it, no space
# opening it. _logscan.c checks exactly this, byte by byte (tests/test_triage.py holds them equal);
# it is written here as the specification. (Requests to /allies/ stay plain: they are most of the
# app's own log.)
PLAIN = (
    r'^[^ "\\]+ [^ "\\]+ [^ "\\]+ '
    rf"\[{_PLAIN_TIME} ?[-+] ?{_ZONE}\] "
    r'"(?:[^ "\\][^"\\]*)?" [1-5][0-9]{2} (?:[0-9]+|-)(?: |\r?$)'
)
# A request to the ally endpoint: the credentials one, or (--all-endpoints) any under /allies/<id>.
# Exactly what the app routes there (no trailing slash); the id is made canonical afterwards.
_CREDENTIALS = r"(?P<method>[A-Z]+) /allies/(?P<ally>[^/? ]+)/credentials(?:\?[^ ]*)? HTTP/[0-9.]+"
_ANY_ALLY = r"(?P<method>[A-Z]+) /allies/(?P<ally>[^/? ]+)(?:[/?][^ ]*)? HTTP/[0-9.]+"
# Where a valid line's request ends: the first unescaped quote, always followed by a space.
_REQUEST_FIELDS = r'^(?P<host>[^ ]+) [^ ]+ [^ ]+ \[(?P<stamp>[^\]]*)\] "{}" '


_GRAMMAR = re.compile(LINE)
# What reads a request to the ally endpoint from a line that is not plain (_logscan.c reads the
# plain ones the same way).
_CREDENTIALS_ENDPOINT = re.compile(_REQUEST_FIELDS.format(_CREDENTIALS))
_ALL_ENDPOINTS = re.compile(_REQUEST_FIELDS.format(_ANY_ALLY))


@dataclass(frozen=True)
class Window:
    since: datetime | None = None
    until: datetime | None = None

    def __bool__(self) -> bool:
        return self.since is not None or self.until is not None

    def bounds(self) -> tuple[int, int]:
        """[since, until] in whole UTC epoch seconds (a line's time has no fraction)."""
        since = math.ceil(self.since.timestamp()) if self.since else -(2**62)
        until = math.floor(self.until.timestamp()) if self.until else 2**62
        return since, until


# What a block says about one ally id (as written in the path), from the valid lines in the window
# that request the ally endpoint, as a named record made by the scanning core (a C struct sequence:
# as cheap as a tuple): ally (the id), requests, failures, statuses {status: failures}, methods
# {method: failures}, first_failure and last_failure (UTC seconds, None without failures), clients
# [(line index in the block, client) of the first MAX_CLIENTS_LISTED distinct clients of its
# failures], latest_epoch and latest_index (its latest request's time and line index), latest_ok
# (whether that request succeeded). Python makes the same record for the lines it reads itself.
AllyCounts = _logscan.AllyCounts


@dataclass
class BlockResult:
    lines: int = 0
    parsed: int = 0
    in_window: int = 0
    statuses: Counter = field(default_factory=Counter)
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (index in the block, text)
    allies: list[AllyCounts] = field(default_factory=list)
    failures: dict = field(default_factory=dict)  # (minute, status) -> failed requests, when asked


def analyze_block(
    block: bytes, window: Window, all_endpoints: bool = False, timeline: bool = False
) -> BlockResult:
    """What one block of whole lines (each ending with a newline) says; the requests to the ally
    endpoint are those to /allies/<id>/credentials, or with `all_endpoints` to /allies/<id>/...;
    with `timeline`, the failed requests by minute and status too."""
    since, until = window.bounds()
    lines, statuses, others, allies, failures = _logscan.scan(
        block, MAX_LINE_BYTES, since, until, all_endpoints, MAX_CLIENTS_LISTED, timeline
    )
    result = BlockResult(lines, lines, 0, Counter(statuses), [], allies, failures)
    request = _ALL_ENDPOINTS if all_endpoints else _CREDENTIALS_ENDPOINT
    for index, start, end in others:
        text = _text(block, start, end)
        found = _read_whole(text, end - start)
        if found is None:
            result.parsed -= 1
            if len(result.malformed) < MALFORMED_SAMPLES:
                result.malformed.append((index, text))
        elif since <= found.epoch <= until:
            result.statuses[found.status] += 1
            if timeline and found.status >= 400:
                key = (found.epoch // 60, found.status)
                failures[key] = failures.get(key, 0) + 1
            if "/allies/" in text and (fields := request.match(text)):
                result.allies.append(_one_request(index, found, *fields.group("ally", "method", "host")))
    result.in_window = result.statuses.total()
    return result


def _one_request(index: int, found: _Valid, ally: str, method: str, host: str) -> AllyCounts:
    """An AllyCounts of one request (a line that is not plain, read by Python)."""
    failed, epoch = found.status >= 400, found.epoch
    if not failed:
        return AllyCounts((ally, 1, 0, {}, {}, None, None, [], epoch, index, True))
    return AllyCounts(
        (ally, 1, 1, {found.status: 1}, {method: 1}, epoch, epoch, [(index, host)], epoch, index, False)
    )


@dataclass(frozen=True)
class _Valid:
    status: int
    epoch: int


def _read_whole(text: str, size: int) -> _Valid | None:
    """A line that is not plain, by the whole grammar and a calendar check (a time that is not a
    real one, or not within years 1-9999 once in UTC, makes it malformed)."""
    found = _GRAMMAR.match(text) if size <= MAX_LINE_BYTES else None
    if found is None:
        return None
    try:
        when = datetime.strptime(f"{found['time']}{found['sign']}{found['zone']}", "%d/%b/%Y:%H:%M:%S%z")
        epoch = int(when.astimezone(UTC).timestamp())
    except (ValueError, OverflowError):
        return None
    return _Valid(int(found["status"]), epoch)


def _text(block: bytes, start: int, end: int) -> str:
    """A line as text: bytes that are not UTF-8 become U+FFFD."""
    return block[start:end].decode("utf-8", "replace")


@functools.lru_cache(maxsize=4096)  # a log names the same allies over and over
def canonical_ally(raw: str) -> str:
    """The id as the app reads it from the path: percent-decoded, a UUID in lowercase."""
    return canonical_ally_id(unquote(raw) if "%" in raw else raw)
