"""Access-log lines in bulk: what one block of whole lines says, computed in polars.

The grammar is Apache common / combined (the app's own log/server.log is common format), plus
the quirks of the original challenge's server log: a space inside the time zone, `- 0500`, and an
extra field after the size, `404 - 4729`. Every line is either valid or malformed; nothing is
guessed.

Why polars: checking every line against the grammar is the costly step, and Rust's regex engine
does it about seven times faster than Python's `re` (polars releases the GIL meanwhile, so blocks
run in threads: see allies.triage). Per line, the work is a handful of whole-column operations;
only the few lines that are not "plain" (below) and the lines mentioning /allies/ get more.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

# polars allocates with jemalloc, which by default keeps an arena and a cache per thread: memory
# freed by one block is not reused for the next, and the triage's peak memory grows by about a
# third. One arena without thread caches costs no measurable speed. Read when polars loads.
os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1,tcache:false")

import polars as pl  # noqa: E402 - after the allocator setting

from .validation import UUID_PATTERN  # noqa: E402

MALFORMED_SAMPLES = 5
MAX_LINE_BYTES = 1024 * 1024  # a longer line is malformed (allies.triage never reads one whole)
MAX_CLIENTS_LISTED = 20
_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
# A date the calendar has: 31/Feb, day 32, year 0 and such make a line malformed. The grammar checks
# day and month; a line whose time still is not a real one once in UTC (29/Feb of a common year, a
# time past 9999 or before year 1) is malformed too, by the full check of the lines that are not
# plain (_others), where those dates go.
_DAY_MONTH = (
    rf"(?:(?:0[1-9]|1[0-9]|2[0-9])/{_MONTH}|30/(?:Jan|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"|31/(?:Jan|Mar|May|Jul|Aug|Oct|Dec))"
)
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_TIME = rf"{_DAY_MONTH}/{_YEAR}:(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)"
# The plain grammar leaves out the dates whose time must be computed to be trusted.
_PLAIN_DAY_MONTH = (
    rf"(?:(?:0[1-9]|1[0-9]|2[0-8])/{_MONTH}|(?:29|30)/(?:Jan|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"|31/(?:Jan|Mar|May|Jul|Aug|Oct|Dec))"
)
_PLAIN_YEAR = r"(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8]|0[1-9][0-9]{2}|00[1-9][0-9]|000[2-9])"
_PLAIN_TIME = rf"{_PLAIN_DAY_MONTH}/{_PLAIN_YEAR}:(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)"
_ZONE = r"(?:0[0-9]|1[0-4])[0-5][0-9]"  # UTC offsets exist from -12:00 to +14:00
# host ident user [time zone] "request" status size [anything: combined format's referer/agent,
# or the original log's extra field]. `- 0500`: the original log's zone quirk.
LINE = (
    r"^(?P<host>[^ ]+) [^ ]+ [^ ]+ "
    rf"\[(?P<time>{_TIME}) ?(?P<sign>[-+]) ?(?P<zone>{_ZONE})\] "
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>[1-5][0-9]{2}) (?:[0-9]+|-)(?: .*)?\r?$'
)
_STATUS_GROUP = re.compile(LINE).groupindex["status"]
# Most lines, and only valid ones: no quote or backslash before the request or inside it, no space
# opening it. In these the first `" ` closes the request, so the status is found by a substring
# search. Checking this (no captures, and it may stop after the size) is the costly step per line;
# only the other lines go through LINE with captures, which is about twice as slow. (Requests to
# /allies/ stay plain: they are most of the app's own log.)
_PLAIN = (
    r'^[^ "\\]+ [^ "\\]+ [^ "\\]+ '
    rf"\[{_PLAIN_TIME} ?[-+] ?{_ZONE}\] "
    r'"(?:[^ "\\][^"\\]*)?" [1-5][0-9]{2} (?:[0-9]+|-)(?: |\r?$)'
)
# On a line already known to be valid, short expressions find the fields: captures stay cheap.
_STAMP = r"^[^ ]+ [^ ]+ [^ ]+ \[([^\]]*)\] "
_SEPARATORS = [chr(code) for code in range(1, 32) if chr(code) not in "\n\r"]
# A request to the ally endpoint: the credentials one, or (--all-endpoints) any under /allies/<id>.
# Exactly what the app routes there (no trailing slash); the id is made canonical afterwards.
_CREDENTIALS = r"(?P<method>[A-Z]+) /allies/(?P<ally>[^/? ]+)/credentials(?:\?[^ ]*)? HTTP/[0-9.]+"
_ANY_ALLY = r"(?P<method>[A-Z]+) /allies/(?P<ally>[^/? ]+)(?:[/?][^ ]*)? HTTP/[0-9.]+"
# Where a valid line's request ends: the first unescaped quote, always followed by a space.
_REQUEST_FIELDS = r'^(?P<host>[^ ]+) [^ ]+ [^ ]+ \[(?P<stamp>[^\]]*)\] "{}" '


@dataclass(frozen=True)
class Window:
    since: datetime | None = None
    until: datetime | None = None

    def __bool__(self) -> bool:
        return self.since is not None or self.until is not None


@dataclass
class BlockResult:
    lines: int = 0
    parsed: int = 0
    in_window: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (index in the block, text)
    # The valid lines (in the window) that mention /allies/: index, line, status. Which of them are
    # requests to the ally endpoint is decided later, for many blocks at once (`summarize_allies`).
    ally_lines: pl.DataFrame | None = None


def analyze_block(block: bytes, window: Window) -> BlockResult:
    """What one block of whole lines (each ending with a newline) says."""
    if not block:
        return BlockResult()
    frame = _lines_frame(block)
    del block  # copied into the frame: free it now (the caller keeps no reference)
    line = pl.col("line")
    # The work on every line, in one query run by this thread (the other threads have theirs).
    columns = frame.with_columns_seq(
        plain=line.str.contains(_PLAIN).fill_null(False),
        # The status of a plain line: the 3 bytes after its first `" ` (str.find counts bytes).
        status=line.cast(pl.Binary).bin.slice(line.str.find('" ', literal=True) + 2, 3),
        mentions=line.str.contains("/allies/", literal=True),
    )
    lines, valid, status = columns["line"], columns["plain"], columns["status"]
    if lines.str.len_bytes().max() > MAX_LINE_BYTES:  # rare: one came whole within a block
        valid = valid & (lines.str.len_bytes() <= MAX_LINE_BYTES)
    others = _others(lines, ~valid)
    malformed = others.filter(pl.col("status").is_null())
    valid = valid.scatter(others["index"], others["status"].is_not_null())
    status = status.scatter(others["index"], others["status"])
    if window:  # the time of every line is needed only to filter by it
        valid = valid & _inside(window, lines)
    about_allies = (valid & columns["mentions"]).arg_true()
    return BlockResult(
        lines=lines.len(),
        parsed=lines.len() - malformed.height,
        in_window=int(valid.sum()),
        statuses={int(code): n for code, n in status.filter(valid).value_counts().iter_rows()},
        malformed=[(i, text or "") for i, text, _ in malformed.head(MALFORMED_SAMPLES).iter_rows()],
        # Copies (gather compacts them), so the block's memory is freed once it is analysed.
        ally_lines=pl.DataFrame(
            {"index": about_allies, "line": lines.gather(about_allies), "status": status.gather(about_allies)}
        ),
    )


def _others(lines: pl.Series, mask: pl.Series) -> pl.DataFrame:
    """index, line, status of the lines in `mask` (the few not plain): the full expression decides
    whether each is valid (status) or malformed (no status)."""
    index = mask.arg_true()
    line = pl.col("line")
    trusted = (line.str.len_bytes() <= MAX_LINE_BYTES) & _utc(line.str.extract(_STAMP, 1)).is_not_null()
    return pl.DataFrame({"index": index, "line": lines.gather(index)}).with_columns(
        status=pl.when(trusted).then(line.str.extract(LINE, _STATUS_GROUP)).cast(pl.Binary)
    )


def _inside(window: Window, lines: pl.Series) -> pl.Series:
    """Whether each line's time is inside the window (a date like 31/Feb is in no window)."""
    time = _utc(lines.str.extract(_STAMP, 1))
    inside = time.is_not_null()
    if window.since:
        inside = inside & (time >= window.since)
    if window.until:
        inside = inside & (time <= window.until)
    return inside.fill_null(False)


def _ally_requests(lines: pl.DataFrame, all_endpoints: bool) -> pl.DataFrame:
    """file, line_no, host, when, method, ally, status of each of `lines` (valid lines mentioning
    /allies/, `place`d: file, line_no, line, status) that is a request to the ally endpoint."""
    pattern = _REQUEST_FIELDS.format(_ANY_ALLY if all_endpoints else _CREDENTIALS)
    return (
        lines.lazy()
        .select(
            "file",
            "line_no",
            fields=pl.col("line").str.extract_groups(pattern),
            status=pl.col("status").cast(pl.String).cast(pl.Int32),
        )
        .unnest("fields")
        .drop_nulls("ally")  # another endpoint
        # The client and the method matter only for failures.
        .with_columns(
            pl.when(pl.col("status") >= 400).then(pl.col("host", "method")),
            when=_utc(pl.col("stamp")),
        )
        .drop("stamp")
        .drop_nulls("when")  # 29/Feb of a common year, or a time beyond year 9999 in UTC: skipped
        .with_columns(ally=_canonical_ally(pl.col("ally")))
        .collect()
    )


def _canonical_ally(ally: pl.Expr) -> pl.Expr:
    """The id as the app reads it from the path: percent-decoded, a UUID in lowercase."""
    decoded = pl.when(ally.str.contains("%", literal=True)).then(
        ally.map_elements(unquote, return_dtype=pl.String)
    )
    ally = decoded.otherwise(ally)
    return (
        pl.when(ally.str.contains(f"^(?i:{UUID_PATTERN.pattern})$"))
        .then(ally.str.to_lowercase())
        .otherwise(ally)
    )


def _utc(stamp: pl.Expr | pl.Series) -> pl.Expr | pl.Series:
    """`02/Nov/2023:22:24:12 -0500` (or the quirk `- 0500`) as UTC; null for 29/Feb/2023 and for a
    time outside years 1-9999 once in UTC (Python's datetime holds no other)."""
    time = stamp.str.replace_all(" ", "", literal=True).str.to_datetime(
        "%d/%b/%Y:%H:%M:%S%z", time_zone="UTC", strict=False
    )
    year = time.dt.year()
    return (
        time.set(year.is_between(1, 9999).not_(), None)
        if isinstance(time, pl.Series)
        else (pl.when(year.is_between(1, 9999)).then(time))
    )


def summarize_allies(lines: list[pl.DataFrame], all_endpoints: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per ally, failures per (ally, status, method)) of the requests to the ally endpoint
    among several blocks' `ally_lines`, already `place`d. Run on many blocks at once: each polars
    call has a fixed cost (about 0.1 ms), which would otherwise be paid by every block."""
    requests = _ally_requests(pl.concat(lines), all_endpoints).lazy()
    failed, when, order = pl.col("status") >= 400, pl.col("when"), ("when", "file", "line_no")
    per_ally = requests.group_by("ally", maintain_order=True).agg(
        requests=pl.len().cast(pl.Int64),
        failures=failed.sum().cast(pl.Int64),
        first_failure=when.filter(failed).min(),
        last_failure=when.filter(failed).max(),
        clients=pl.col("host").filter(failed).unique(maintain_order=True).head(MAX_CLIENTS_LISTED),
        last=pl.struct(when, "file", "line_no", ok=pl.col("status") < 400).sort_by(order).last(),
    )
    failures = requests.filter(failed).group_by("ally", "status", "method", maintain_order=True).len("n")
    return tuple(pl.collect_all([per_ally, failures]))


def place(lines: pl.DataFrame, file_index: int, first_line: int) -> pl.DataFrame:
    """A block's `ally_lines` with their place in the whole input: file index and line number."""
    return lines.with_columns(
        file=pl.lit(file_index, pl.Int64), line_no=pl.col("index").cast(pl.Int64) + first_line + 1
    ).drop("index")


def combine_allies(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Rows of `summarize_allies` for successive parts of the input, as one row per ally."""
    latest = pl.col("last")
    order = (latest.struct.field("when"), latest.struct.field("file"), latest.struct.field("line_no"))
    return (
        pl.concat(frames)
        .group_by("ally", maintain_order=True)
        .agg(
            pl.col("requests", "failures").sum(),
            pl.col("first_failure").min(),
            pl.col("last_failure").max(),
            pl.col("clients").explode().drop_nulls().unique(maintain_order=True).head(MAX_CLIENTS_LISTED),
            latest.sort_by(order).last(),
        )
    )


def combine_failures(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames).group_by("ally", "status", "method", maintain_order=True).agg(pl.col("n").sum())


def _lines_frame(block: bytes) -> pl.DataFrame:
    """One row per line, exactly: polars' CSV reader with a separator byte absent from the block."""
    for separator in _separators(block):
        for encoding in ("utf8", "utf8-lossy"):  # lossy: bytes that are not UTF-8 become U+FFFD
            try:
                return _read_lines(block, separator, encoding)
            except (pl.exceptions.PolarsError, _NotOneRowPerLine):
                continue
    # Rare: every control byte occurs in the block, or the reader disagreed on line count.
    lines = block.split(b"\n")[:-1]
    decoded = [raw.decode("utf-8", "replace") for raw in lines]
    return pl.DataFrame({"line": decoded}, schema={"line": pl.String})


def _separators(block: bytes) -> Iterator[str]:
    """\x01, which a log nearly never holds: tried before searching the block for it (a pass);
    if the block does hold it, the first control byte it does not hold."""
    yield _SEPARATORS[0]
    if _SEPARATORS[0].encode() in block:
        absent = next((s for s in _SEPARATORS[1:] if s.encode() not in block), None)
        if absent is not None:
            yield absent


class _NotOneRowPerLine(Exception):
    pass


def _read_lines(block: bytes, separator: str, encoding: str) -> pl.DataFrame:
    frame = pl.read_csv(
        block,
        has_header=False,
        separator=separator,
        quote_char=None,
        new_columns=["line"],
        schema={"line": pl.String},
        encoding=encoding,
    )
    if not _one_row_per_line(frame, block, exact_bytes=encoding == "utf8"):
        raise _NotOneRowPerLine
    return frame


def _one_row_per_line(frame: pl.DataFrame, block: bytes, exact_bytes: bool) -> bool:
    """Whether the reader split exactly at the newlines (cheap byte arithmetic when decoding was strict)."""
    if exact_bytes:
        return int(frame["line"].str.len_bytes().fill_null(0).sum()) + frame.height == len(block)
    return frame.height == block.count(b"\n")
