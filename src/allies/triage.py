"""Case 4: triage of access logs — failed requests, affected allies and whether they recovered.

Reads Apache common / combined logs (the app's own log/server.log is common format), plain or
gzip, files or stdin, including the quirks of the original challenge's server log (a space inside
the time zone, `- 0500`, and an extra field after the size, `404 - 4729`). Every line is either
parsed or counted as malformed; nothing is guessed.

Speed: each chunk of lines is checked with one compiled regular expression in polars (Rust's
regex engine), in worker processes reading their own byte ranges of the file, one per CPU;
memory stays bounded by the chunk size whatever the size of the log.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

from .validation import ALLY_ID_PATTERN

CHUNK_BYTES = 8 * 1024 * 1024
MALFORMED_SAMPLES = 5
MAX_CLIENTS_LISTED = 20
_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = rf"(?:0[1-9]|[12][0-9]|3[01])/{_MONTH}/[0-9]{{4}}:(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)"
# host ident user [time zone] "request" status size [anything: combined format's referer/agent,
# or the original log's extra field]. `- 0500`: the original log's zone quirk.
LINE = (
    r"^(?P<host>[^ ]+) [^ ]+ [^ ]+ "
    rf"\[(?P<time>{_TIME}) ?(?P<sign>[-+]) ?(?P<zone>[0-9]{{4}})\] "
    r'"(?P<request>(?:[^"\\]|\\.)*)" (?P<status>[1-5][0-9]{2}) (?:[0-9]+|-)(?: .*)?\r?$'
)
# The same set of lines, but the check may stop after the size: what follows a space is free text.
_VALID = LINE.replace(r"(?: .*)?\r?$", r"(?: |\r?$)")
_CREDENTIALS = r"^(?P<method>[A-Z]+) /allies/(?P<ally>[^/? ]*)/credentials/?(?:\?[^ ]*)? HTTP/[0-9.]+$"
_ANY_ALLY = r"^(?P<method>[A-Z]+) /allies/(?P<ally>[^/? ]+)(?:[/?][^ ]*)? HTTP/[0-9.]+$"
_LINE_RE = re.compile(LINE)
_CREDENTIALS_RE = re.compile(_CREDENTIALS)
_ANY_ALLY_RE = re.compile(_ANY_ALLY)
_SEPARATORS = [chr(code) for code in range(1, 32) if chr(code) not in "\n\r"]


class TriageError(Exception):
    """Input that cannot be read (missing file, bad gzip, bad time); the message says which."""


# -- what one chunk of lines yields ----------------------------------------------------------


@dataclass(frozen=True)
class Window:
    since: datetime | None = None
    until: datetime | None = None

    def __bool__(self) -> bool:
        return self.since is not None or self.until is not None


@dataclass
class AllyStats:
    """What the log says about one ally's requests."""

    ally_id: str
    requests: int = 0
    failures: int = 0
    statuses: Counter = field(default_factory=Counter)
    methods: Counter = field(default_factory=Counter)
    clients: set[str] = field(default_factory=set)
    first_failure: datetime | None = None
    last_failure: datetime | None = None
    # The latest request, (time, file index, line number), and whether it succeeded.
    last: tuple = ()
    last_ok: bool = False

    @property
    def recovered(self) -> bool:
        """A request after its failures succeeded: the latest request for this ally is a success."""
        return self.failures > 0 and self.last_ok

    @property
    def valid_id(self) -> bool:
        return bool(ALLY_ID_PATTERN.match(self.ally_id))

    def add(self, position: tuple, when: datetime, client: str, method: str, status: int) -> None:
        self.requests += 1
        if position > self.last:
            self.last, self.last_ok = position, status < 400
        if status < 400:
            return
        self.failures += 1
        self.statuses[status] += 1
        self.methods[method] += 1
        if len(self.clients) < MAX_CLIENTS_LISTED:
            self.clients.add(client)
        self.first_failure = min(filter(None, (self.first_failure, when)))
        self.last_failure = max(filter(None, (self.last_failure, when)))

    def to_dict(self) -> dict:
        return {
            "ally_id": self.ally_id,
            "valid_id": self.valid_id,
            "requests": self.requests,
            "failures": self.failures,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "methods": dict(sorted(self.methods.items())),
            "first_failure": _iso(self.first_failure),
            "last_failure": _iso(self.last_failure),
            "clients": sorted(self.clients),
            "recovered": self.recovered,
        }

    def absorb(self, other: AllyStats, file_index: int, first_line: int) -> None:
        """Add a chunk's stats, whose `last` is (time, 0, index in the chunk)."""
        self.requests += other.requests
        self.failures += other.failures
        self.statuses.update(other.statuses)
        self.methods.update(other.methods)
        self.clients.update(list(other.clients)[: max(0, MAX_CLIENTS_LISTED - len(self.clients))])
        self.first_failure = min(filter(None, (self.first_failure, other.first_failure)), default=None)
        self.last_failure = max(filter(None, (self.last_failure, other.last_failure)), default=None)
        when, _, index = other.last
        position = (when, file_index, first_line + index)
        if position > self.last:
            self.last, self.last_ok = position, other.last_ok


@dataclass
class ChunkResult:
    lines: int = 0
    parsed: int = 0
    in_window: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (index in chunk, text)
    allies: dict[str, AllyStats] = field(default_factory=dict)  # requests to /allies/<id>/...


def analyze_chunk(block: bytes, window: Window, all_endpoints: bool) -> ChunkResult:
    """Parse one block of whole lines (ending with a newline)."""
    import polars as pl

    frame = _lines_frame(block).with_row_index("index")
    line = pl.col("line")
    checked = frame.select(
        ok=line.str.contains(_VALID).fill_null(False),
        status=line.str.slice(line.str.find('" ', literal=True) + 2, 3),
        ally=line.str.contains("/allies/", literal=True).fill_null(False),
    )
    ok = checked["ok"]
    parsed = int(ok.sum())
    malformed = frame.filter(~ok).head(MALFORMED_SAMPLES) if parsed < frame.height else frame.clear()
    keep = ok
    if window:  # the time of every line is needed only to filter by it (null when malformed)
        inside = frame.select(time=_time_of(line)).select(_inside(window)).to_series()
        keep = ok & inside.fill_null(False)
    counts = checked.filter(keep).group_by("status").len()
    allies = frame.filter(keep & checked["ally"])
    return ChunkResult(
        lines=frame.height,
        parsed=parsed,
        in_window=int(counts["len"].sum()),
        statuses={int(status): n for status, n in counts.iter_rows()},
        malformed=[(i, text or "") for i, text in malformed.iter_rows()],
        allies=_ally_stats(allies.iter_rows(), all_endpoints),
    )


def _inside(window: Window):
    import polars as pl

    inside = pl.lit(True)
    if window.since:
        inside = inside & (pl.col("time") >= window.since)
    if window.until:
        inside = inside & (pl.col("time") <= window.until)
    return inside


def _time_of(line):
    """UTC datetime of a valid line (the zone quirk `- 0500` normalized)."""
    import polars as pl

    parts = line.str.extract_groups(LINE)
    stamp = pl.concat_str(
        [parts.struct.field("time"), pl.lit(" "), parts.struct.field("sign"), parts.struct.field("zone")]
    )
    return stamp.str.to_datetime("%d/%b/%Y:%H:%M:%S %z", time_zone="UTC")


def _ally_stats(rows: Iterable[tuple[int, str]], all_endpoints: bool) -> dict[str, AllyStats]:
    """Per ally, its requests among `rows` (index in the chunk, valid line): few, so plain Python."""
    target = _ANY_ALLY_RE if all_endpoints else _CREDENTIALS_RE
    stats: dict[str, AllyStats] = {}
    for index, text in rows:
        try:
            host, when, request, status = _fields(text)
        except ValueError:  # a date the pattern accepts but the calendar does not (31/Feb)
            continue
        match = target.match(request)
        if match:
            ally = stats.get(match["ally"]) or stats.setdefault(match["ally"], AllyStats(match["ally"]))
            ally.add((when, 0, index), when, host, match["method"], status)
    return stats


def _fields(text: str) -> tuple[str, datetime, str, int]:
    """(client, time, request, status) of a line already known to be valid."""
    if "\\" in text:  # escaped quotes in the request: let the full expression find the fields
        parts = _LINE_RE.match(text)
        return (
            parts["host"],
            _utc(f"{parts['time']} {parts['sign']}{parts['zone']}"),
            parts["request"],
            int(parts["status"]),
        )
    opening = text.index('] "')
    closing = text.index('" ', opening + 3)
    stamp = text[text.index("[") + 1 : opening]
    return (
        text[: text.index(" ")],
        _utc(stamp),
        text[opening + 3 : closing],
        int(text[closing + 2 : closing + 5]),
    )


def _lines_frame(block: bytes):
    """One row per line, exactly: polars' CSV reader with a separator byte absent from the block."""
    import polars as pl

    separator = next((s for s in _SEPARATORS if s.encode() not in block), None)
    if separator is not None:
        for encoding in ("utf8", "utf8-lossy"):  # strict first: faster; lossy for odd bytes
            try:
                frame = pl.read_csv(
                    block,
                    has_header=False,
                    separator=separator,
                    quote_char=None,
                    new_columns=["line"],
                    schema={"line": pl.String},
                    encoding=encoding,
                )
            except pl.exceptions.ComputeError:
                continue
            if _one_row_per_line(frame, block, exact_bytes=encoding == "utf8"):
                return frame
    # Rare: every control byte occurs in the block, or the reader disagreed on line count.
    lines = block.split(b"\n")[:-1]
    decoded = [raw.decode("utf-8", "replace") for raw in lines]
    return pl.DataFrame({"line": decoded}, schema={"line": pl.String})


def _one_row_per_line(frame, block: bytes, exact_bytes: bool) -> bool:
    """Whether the reader split exactly at the newlines (cheap byte arithmetic when decoding was strict)."""
    if exact_bytes:
        return int(frame["line"].str.len_bytes().fill_null(0).sum()) + frame.height == len(block)
    return frame.height == block.count(b"\n")


@functools.lru_cache(maxsize=4096)
def _utc(stamp: str) -> datetime:
    """`02/Nov/2023:22:24:12 -0500` (or the quirk `- 0500`) as UTC."""
    day_time, _, zone = stamp.partition(" ")
    return datetime.strptime(f"{day_time} {zone.replace(' ', '')}", "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)


# -- reading inputs in chunks ---------------------------------------------------------------


@dataclass(frozen=True)
class RangeTask:
    """Lines starting in [start, end) of a plain file; the worker reads them itself."""

    path: str
    start: int
    end: int

    def read(self) -> bytes:
        with open(self.path, "rb") as handle:
            begin, stop = self._line_start(handle, self.start), self._line_start(handle, self.end)
            if begin >= stop:
                return b""
            handle.seek(begin)
            block = handle.read(stop - begin)  # one read, no copy: blocks are 16 MiB
        return block if block.endswith(b"\n") else block + b"\n"

    @staticmethod
    def _line_start(handle: BinaryIO, offset: int) -> int:
        """The first line start at or after `offset` (a line under way belongs to the range before)."""
        if offset == 0:
            return 0
        handle.seek(offset - 1)
        if handle.read(1) != b"\n":
            handle.readline()
        return handle.tell()


def _run_task(task: RangeTask | bytes, window: Window, all_endpoints: bool) -> ChunkResult:
    block = task.read() if isinstance(task, RangeTask) else task
    return analyze_chunk(block, window, all_endpoints) if block else ChunkResult()


def _open_input(path: str, stack: ExitStack) -> tuple[BinaryIO, bool]:
    """(stream, is_plain_file), closed with `stack`; gzip is recognised by its magic bytes."""
    try:
        raw = sys.stdin.buffer if path == "-" else stack.enter_context(open(path, "rb"))  # noqa: SIM115
    except OSError as exc:
        raise TriageError(f"cannot read {path}: {exc.strerror}") from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return stack.enter_context(gzip.GzipFile(fileobj=buffered)), False
    return buffered, path != "-" and Path(path).is_file()


def _stream_blocks(stream: BinaryIO, path: str) -> Iterator[bytes]:
    rest = b""
    while True:
        try:
            data = stream.read(CHUNK_BYTES)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise TriageError(f"cannot read {path}: {exc}") from None
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield data[:cut]
    if rest:
        yield rest + b"\n"


def _tasks(path: str) -> Iterator[RangeTask | bytes]:
    with ExitStack() as stack:
        stream, plain = _open_input(path, stack)
        if plain:
            size = os.path.getsize(path)
            for start in range(0, size, CHUNK_BYTES):
                yield RangeTask(path, start, min(start + CHUNK_BYTES, size))
        else:
            yield from _stream_blocks(stream, path)


# -- the report -----------------------------------------------------------------------------


@dataclass
class Report:
    files: list[dict] = field(default_factory=list)
    total_lines: int = 0
    parsed: int = 0
    in_window: int = 0
    window: Window = field(default_factory=Window)
    statuses: Counter = field(default_factory=Counter)
    malformed_samples: list[dict] = field(default_factory=list)
    allies: dict[str, AllyStats] = field(default_factory=dict)
    all_endpoints: bool = False

    @property
    def malformed(self) -> int:
        return self.total_lines - self.parsed

    @property
    def failed_requests(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 400)

    @property
    def credential_requests(self) -> int:
        return sum(stats.requests for stats in self.allies.values())

    @property
    def failed_credential_requests(self) -> int:
        return sum(stats.failures for stats in self.allies.values())

    def affected(self) -> list[AllyStats]:
        """Allies with failures: still affected first, then by number of failures."""
        hit = [s for s in self.allies.values() if s.failures]
        return sorted(hit, key=lambda s: (s.recovered, -s.failures, s.ally_id))

    def still_affected(self) -> list[AllyStats]:
        return [stats for stats in self.affected() if not stats.recovered]

    def status_classes(self) -> dict[str, int]:
        classes: Counter = Counter()
        for status, n in self.statuses.items():
            classes[f"{status // 100}xx"] += n
        return dict(sorted(classes.items()))

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "total_lines": self.total_lines,
            "parsed": self.parsed,
            "malformed": self.malformed,
            "malformed_samples": self.malformed_samples,
            "window": {"since": _iso(self.window.since), "until": _iso(self.window.until)},
            "requests_in_window": self.in_window,
            "status_classes": self.status_classes(),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failed_requests": self.failed_requests,
            "endpoint": "/allies/<id>/..." if self.all_endpoints else "/allies/<id>/credentials",
            "credential_requests": self.credential_requests,
            "failed_credential_requests": self.failed_credential_requests,
            "affected_allies": [stats.to_dict() for stats in self.affected()],
            "still_affected": len(self.still_affected()),
        }

    def merge(self, file_index: int, first_line: int, chunk: ChunkResult) -> None:
        self.total_lines += chunk.lines
        self.parsed += chunk.parsed
        self.in_window += chunk.in_window
        self.statuses.update(chunk.statuses)
        room = MALFORMED_SAMPLES - len(self.malformed_samples)
        for index, text in chunk.malformed[:room]:
            self.malformed_samples.append(
                {"file": self.files[file_index]["path"], "line": first_line + index + 1, "text": text[:200]}
            )
        for ally_id, partial in chunk.allies.items():
            if ally_id not in self.allies:
                self.allies[ally_id] = AllyStats(ally_id)
            self.allies[ally_id].absorb(partial, file_index, first_line)


def analyze(
    paths: Iterable[str], window: Window = Window(), all_endpoints: bool = False, workers: int | None = None
) -> Report:
    """Read every log in `paths` (`-` is stdin) and build the report."""
    report = Report(window=window, all_endpoints=all_endpoints)
    workers = workers or max(1, len(os.sched_getaffinity(0)))
    jobs = ((i, task) for i, path in enumerate(paths) for task in _with_file(report, i, path))
    head = list(islice(jobs, 2))
    jobs = chain(head, jobs)
    if len(head) < 2 or workers == 1:  # a single chunk: not worth starting worker processes
        for file_index, task in jobs:
            _merge(report, file_index, _run_task(task, window, all_endpoints))
    else:
        _run_parallel(report, jobs, window, all_endpoints, workers)
    return report


def _with_file(report: Report, index: int, path: str) -> Iterator[RangeTask | bytes]:
    report.files.append({"path": path, "lines": 0})
    yield from _tasks(path)


def _merge(report: Report, file_index: int, chunk: ChunkResult) -> None:
    entry = report.files[file_index]
    report.merge(file_index, entry["lines"], chunk)
    entry["lines"] += chunk.lines


def _init_worker() -> None:
    os.environ["POLARS_MAX_THREADS"] = "1"  # one process per core already; before polars loads
    import polars  # noqa: F401 - load it now, not on the first chunk


def _run_parallel(report: Report, jobs: Iterable, window: Window, all_endpoints: bool, workers: int) -> None:
    """Results are merged in input order; at most 2 chunks per worker are in flight (bounded RAM)."""
    pending: list[tuple[int, Future]] = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        for file_index, task in jobs:
            pending.append((file_index, pool.submit(_run_task, task, window, all_endpoints)))
            if len(pending) >= 2 * workers:
                index, future = pending.pop(0)
                _merge(report, index, future.result())
        for index, future in pending:
            _merge(report, index, future.result())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_time(text: str) -> datetime:
    """ISO 8601 (`2023-11-02T22:30:00-05:00`, a date, or without zone: UTC) or the log's format."""
    for parse in (datetime.fromisoformat, lambda t: datetime.strptime(t, "%d/%b/%Y:%H:%M:%S %z")):
        try:
            value = parse(text.strip())
        except ValueError:
            continue
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raise TriageError(f"cannot read the time {text!r}: use ISO 8601, e.g. 2023-11-02T22:30:00-05:00")
