"""Access logs with a known ground truth, and the line-by-line reference the triage is held to:
shared by the triage, hostile-input and console tests."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote

from allies.triage import logparse
from allies.validation import canonical_ally_id

A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"
C = "33333333-3333-4333-8333-333333333333"
START = datetime(2026, 3, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=-5)))


def stamp(minute: int, quirk: bool = False) -> str:
    zone = "- 0500" if quirk else "-0500"
    return f"{(START + timedelta(minutes=minute)):%d/%b/%Y:%H:%M:%S} {zone}"


def common(minute, method, path, status, size="123", host="10.0.0.1", quirk=False, extra=""):
    return f'{host} - - [{stamp(minute, quirk)}] "{method} {path} HTTP/1.1" {status} {size}{extra}'


GARBAGE = [
    "",
    "this is not a log line",
    '10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "GET / HTTP/1.1" 2000 12',  # 4-digit status
    '10.0.0.1 - - [01/Foo/2026:10:00:00 -0500] "GET / HTTP/1.1" 200 12',  # no such month
    '10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "GET / HTTP/1.1" 200 12abc',  # size not a number
    '10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "GET / HTTP/1.1 200 12',  # unterminated request
    '10.0.0.1 - - [01/Mar/2026:10:00:00 -0500] "GET /\x00 HTTP/1.1" 200 12\x00',  # NUL after size
]


def known_log() -> tuple[list[str], dict]:
    """Lines whose exact answers are written down beside them."""
    lines = [
        common(0, "GET", "/health", 200),
        common(1, "POST", f"/allies/{A}/credentials", 500, host="10.0.0.7"),  # A fails...
        common(2, "POST", f"/allies/{A}/credentials", 200, host="10.0.0.7"),  # ...then recovers
        common(3, "POST", f"/allies/{B}/credentials", 404, "-", quirk=True, extra=" 4729"),  # original quirk
        common(4, "GET", f"/allies/{B}/credentials", 503, host="10.0.0.8"),  # B still affected
        common(5, "POST", "/allies/not%0Aan-id/credentials", 400),  # malformed id (a newline), affected
        common(6, "GET", f"/allies/{C}/credentials", 200, extra=' "http://ref/" "curl/8.0"'),  # combined, ok
        common(7, "GET", "/404/500/400", 404),  # numbers in the path must not fool anyone
        common(8, "GET", "/x", 301, size="404"),  # nor a size that looks like a status
        common(9, "PUT", f"/allies/{C}/other", 500),  # another /allies/ endpoint
        *GARBAGE,
        common(10, "GET", '/quote\\"d', 200),  # an escaped quote in the request
        common(11, "GET", "/crlf", 200) + "\r",
    ]
    truth = {
        "total_lines": len(lines),
        "malformed": len(GARBAGE),
        "statuses": {"200": 5, "301": 1, "400": 1, "404": 2, "500": 2, "503": 1},
        "failed_requests": 6,
        "credential_requests": 6,
        "failed_credential_requests": 4,
        "affected": {A: True, B: False, "not\nan-id": False},  # canonical id -> recovered
    }
    return lines, truth


def write(path, lines: list[str], compress: bool = False) -> str:
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    path.write_bytes(gzip.compress(data) if compress else data)
    return str(path)


MUTATIONS = [
    lambda line, rng: line,
    lambda line, rng: line.replace("GET /", "GET /ñandú/", 1),  # not ASCII before the status
    lambda line, rng: line.replace(" - - ", ' a" - ', 1),  # a quote before the request
    lambda line, rng: line.replace('] "', '] " ', 1),  # the request opens with a space
    lambda line, rng: line.replace(" HTTP/1.1", ' x\\" 404 7 HTTP/1.1', 1),  # escaped quote, fake status
    lambda line, rng: line.replace(" HTTP/1.1", ' \\" HTTP/1.1', 1),  # escaped quote
    lambda line, rng: line.replace('" ', "\\" + '" ', 1),  # escapes the closing quote: malformed
    lambda line, rng: line[: rng.randrange(len(line))],  # cut anywhere
    lambda line, rng: line + "\r",
    lambda line, rng: line + ' "ref" "agent \\" 500 1"',  # combined, a fake status in the agent
    lambda line, rng: line.replace("/Mar/", "/mar/", 1),
    lambda line, rng: line.replace("-0500", "- 0500", 1),
    lambda line, rng: line.replace(" HTTP", "\x01 HTTP", 1),  # the byte the reader splits on
    lambda line, rng: line.replace(" HTTP", "\udcff HTTP", 1),  # not UTF-8 (byte 0xFF once written)
    # 3x/Feb: the pattern accepts the day, the calendar does not
    lambda line, rng: line.replace("[0", "[3", 1).replace("/Mar/", "/Feb/", 1),
    lambda line, rng: line.replace('"GET ', '"get ', 1).replace('"POST ', '"post ', 1),  # not a method
    lambda line, rng: line.replace(" /", "  /", 1),  # two spaces before the path
    lambda line, rng: re.sub(r"\[[^]]*\]", "[29/Feb/2023:10:00:00 -0500]", line, count=1),  # common year
    lambda line, rng: re.sub(r"\[[^]]*\]", "[29/Feb/2024:23:00:00 -0500]", line, count=1),  # leap year: valid
    lambda line, rng: re.sub(r"\[[^]]*\]", "[31/Dec/9999:23:59:59 -0100]", line, count=1),  # past 9999 in UTC
    lambda line, rng: re.sub(r"\[[^]]*\]", "[01/Mar/2026:10:00:00 +9999]", line, count=1),  # no such zone
    lambda line, rng: line.replace(A, A.upper(), 1),  # the same ally
    lambda line, rng: line.replace("/credentials", "/credentials/", 1),  # not routed there
    lambda line, rng: line.replace("/credentials", "/credentials%3Fx", 1),  # not routed there
    lambda line, rng: line.replace(A, A.replace("1", "%31"), 1),  # the same ally, percent-encoded
]
# Near misses of a request to the ally endpoint, and hits with a query string.
PATHS = ["/health", "/x/500/404", "/allies", "/alliesx/1", f"/x/allies/{A}/credentials", f"/allies/{A}/other"]
PATHS += [f"/allies/{A}/credentials", f"/allies/{B}/credentials?retry=1", "/allies/not-an-id/credentials"]
CREDENTIALS_REQUEST = re.compile(r"[A-Z]+ /allies/([^/? ]+)/credentials(?:\?[^ ]*)? HTTP/[0-9.]+")


def reference(lines: list[str]) -> dict:
    """What the line grammar says, one line at a time with Python's `re`: slow, obviously right."""
    grammar, statuses, parsed = re.compile(logparse.LINE), Counter(), 0
    requests, failures = Counter(), Counter()
    for line in lines:
        text = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # as read from disk
        found = grammar.match(text.removesuffix("\r"))
        if not found or not _real_date(found) or len(text.encode()) > logparse.MAX_LINE_BYTES:
            continue
        parsed += 1
        statuses[found["status"]] += 1
        ally = CREDENTIALS_REQUEST.fullmatch(found["request"])
        if ally:
            canonical = canonical_ally_id(unquote(ally[1]))  # as the app reads the id
            requests[canonical] += 1
            failures[canonical] += int(found["status"]) >= 400
    return {
        "total_lines": len(lines),
        "malformed": len(lines) - parsed,
        "statuses": dict(sorted(statuses.items())),
        "credential_requests": requests.total(),
        "failed_credential_requests": failures.total(),
        "failures_per_ally": {ally: n for ally, n in failures.items() if n},
    }


def _real_date(found: re.Match) -> bool:
    """A time the calendar has, that stays within years 1-9999 once in UTC."""
    try:
        when = datetime.strptime(f"{found['time']}{found['sign']}{found['zone']}", "%d/%b/%Y:%H:%M:%S%z")
        when.astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True
