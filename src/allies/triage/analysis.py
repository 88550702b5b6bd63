"""Case 4: the analysis of access logs — failed requests, affected allies, whether they recovered.

Reads logs (plain or gzip, files or stdin) in blocks of whole lines; allies.logparse says what
each block contains. Blocks are analysed by threads, one more than CPUs (the scanning core
releases the GIL while it works; the threads of a plain file also read their own byte ranges), and
merged in input order, so at most `workers + 1` blocks are in memory whatever the size of the log.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import os
import sys
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO

from ..failures import InputProblem
from ..validation import is_valid_ally_id
from . import logparse
from .logparse import Window

CHUNK_BYTES = 8 * 1024 * 1024
# A line longer than this is malformed. It is never read whole: memory stays bounded whatever the
# longest line (an access log line is rarely over a few KiB; servers refuse request lines over 8 KiB).
MAX_LINE_BYTES = logparse.MAX_LINE_BYTES
SCAN_BYTES = 64 * 1024  # the piece read at a time while skipping the rest of a long line


class TriageError(InputProblem):
    """Input that cannot be read (missing file, bad gzip, bad time); the message says which."""


@dataclass
class AllyStats:
    """What the log says about one ally's requests."""

    ally_id: str
    requests: int = 0
    failures: int = 0
    statuses: Counter = field(default_factory=Counter)
    methods: Counter = field(default_factory=Counter)
    clients: set[str] = field(default_factory=set)
    last_ok: bool = False  # whether its latest request succeeded
    _latest: tuple = (-(2**63),)  # (time, file, line) of that latest request
    _first: int | None = None  # the times of its first and last failures, UTC seconds
    _last: int | None = None

    def add(self, counts: logparse.AllyCounts, file_index: int, first_line: int) -> None:
        """What a block says about this ally (blocks come in input order); its clients come apart,
        from every count of the block at once (`add_clients`)."""
        self.requests += counts.requests
        latest = (counts.latest_epoch, file_index, first_line + counts.latest_index + 1)
        if latest > self._latest:
            self._latest, self.last_ok = latest, counts.latest_ok
        if not counts.failures:
            return
        first, last = counts.first_failure, counts.last_failure
        self.failures += counts.failures
        self.statuses.update(counts.statuses)
        self.methods.update(counts.methods)
        self._first = first if self._first is None else min(self._first, first)
        self._last = last if self._last is None else max(self._last, last)

    def add_clients(self, first_seen: list[tuple[int, str]]) -> None:
        """A block's (line index, client) of failures: the first distinct ones, in input order."""
        for _, client in sorted(first_seen):
            if len(self.clients) >= logparse.MAX_CLIENTS_LISTED:
                return
            self.clients.add(client)

    @property
    def first_failure(self) -> datetime | None:
        return datetime.fromtimestamp(self._first, UTC) if self._first is not None else None

    @property
    def last_failure(self) -> datetime | None:
        return datetime.fromtimestamp(self._last, UTC) if self._last is not None else None

    @property
    def recovered(self) -> bool:
        """A request after its failures succeeded: the latest request for this ally is a success."""
        return self.failures > 0 and self.last_ok

    @property
    def valid_id(self) -> bool:
        return is_valid_ally_id(self.ally_id)

    def to_dict(self) -> dict:
        return {
            "ally_id": self.ally_id,
            "valid_id": self.valid_id,
            "requests": self.requests,
            "failures": self.failures,
            "statuses": _by_status(self.statuses),
            "methods": dict(sorted(self.methods.items())),
            "first_failure": _iso(self.first_failure),
            "last_failure": _iso(self.last_failure),
            "clients": sorted(self.clients),
            "recovered": self.recovered,
        }


# The timeline keeps at most this many (bucket, status) counts: past it, its buckets widen (a minute,
# then 5 and 15 minutes, an hour, 6 hours, a day, then tenfold), so its memory stays bounded whatever
# the span of the log.
TIMELINE_MAX_POINTS = 20_000
BUCKET_WIDTHS = (60, 300, 900, 3600, 6 * 3600, 86400)


@dataclass
class Timeline:
    """Failed requests (status 400 and up) by time bucket and status."""

    bucket_seconds: int = 60
    counts: Counter = field(default_factory=Counter)  # (bucket start, UTC seconds; status) -> requests

    def add(self, per_minute: dict) -> None:
        """A block's {(minute, status): failures}, the minute as UTC seconds // 60."""
        counts, width = self.counts, self.bucket_seconds
        for (minute, status), n in per_minute.items():  # the timeline's hot loop: kept plain
            start = minute * 60
            key = (start - start % width, status)
            counts[key] = counts.get(key, 0) + n
        while len(self.counts) > TIMELINE_MAX_POINTS:
            self._widen()

    def regrouped(self, max_buckets: int) -> tuple[int, list[tuple[int, dict[int, int]]]]:
        """(bucket seconds, [(bucket start, {status: requests})]) in time order, with buckets wide
        enough that there are at most `max_buckets` from the first failure to the last."""
        if not self.counts:
            return self.bucket_seconds, []
        starts = [start for start, _ in self.counts]
        width = self.bucket_seconds
        while (max(starts) - min(starts)) // width + 1 > max_buckets:
            width = _wider(width)
        grouped: dict[int, Counter] = {}
        for (start, status), n in self.counts.items():
            grouped.setdefault(start - start % width, Counter())[status] += n
        return width, [(start, dict(sorted(grouped[start].items()))) for start in sorted(grouped)]

    def to_dict(self) -> dict:
        return {
            "bucket_seconds": self.bucket_seconds,
            "failures": [
                {"at": _iso(datetime.fromtimestamp(start, UTC)), "status": status, "requests": n}
                for (start, status), n in sorted(self.counts.items())
            ],
        }

    def _bucket(self, epoch: int) -> int:
        return epoch - epoch % self.bucket_seconds

    def _widen(self) -> None:
        self.bucket_seconds = _wider(self.bucket_seconds)
        narrow, self.counts = self.counts, Counter()
        for (start, status), n in narrow.items():
            self.counts[self._bucket(start), status] += n


def _wider(seconds: int) -> int:
    return next((width for width in BUCKET_WIDTHS if width > seconds), seconds * 10)


# -- reading inputs in blocks ----------------------------------------------------------------


@dataclass(frozen=True)
class RangeTask:
    """Lines starting in [start, end) of a plain file; the worker reads them itself."""

    path: str
    start: int
    end: int

    def read(self) -> bytes:
        try:
            return self._read()
        except OSError as exc:  # a special file, a failing disk (EIO): one line, exit 2
            raise TriageError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def _read(self) -> bytes:
        with open(self.path, "rb") as handle:
            begin, stop = self._line_start(handle, self.start), self._line_start(handle, self.end)
            if begin >= stop:
                return b""
            handle.seek(begin)
            if stop - begin > CHUNK_BYTES + MAX_LINE_BYTES:  # a long line: read it line by line
                return _read_capped(handle, stop - begin)
            block = handle.read(stop - begin)  # one read into one new bytes object
        return block if block.endswith(b"\n") else block + b"\n"

    @staticmethod
    def _line_start(handle: BinaryIO, offset: int) -> int:
        """The first line start at or after `offset` (a line under way belongs to the range before),
        found reading SCAN_BYTES at a time."""
        if offset == 0:
            return 0
        handle.seek(offset - 1)
        if handle.read(1) == b"\n":
            return offset
        while piece := handle.read(SCAN_BYTES):
            end = piece.find(b"\n")
            if end >= 0:
                return handle.tell() - len(piece) + end + 1
        return handle.tell()


def _read_capped(handle: BinaryIO, size: int) -> bytes:
    """`size` bytes of whole lines from `handle`, each line over MAX_LINE_BYTES replaced by a short
    malformed line saying so (the rest of it skipped, never held)."""
    out = bytearray()
    while size > 0 and (line := handle.readline(min(size, MAX_LINE_BYTES + 1))):
        size -= len(line)
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            out += line
            continue
        read, rest = _skip_to_line_end(handle, size)
        size -= read
        out += _too_long(line, len(line) + rest)
    return bytes(out) if out.endswith(b"\n") or not out else bytes(out) + b"\n"


def _skip_to_line_end(handle: BinaryIO, limit: float = math.inf) -> tuple[int, int]:
    """Read past the rest of a line, SCAN_BYTES at a time and at most `limit` bytes: (bytes read,
    bytes of the line among them, without its newline)."""
    read = 0
    while read < limit and (piece := handle.readline(min(limit - read, SCAN_BYTES))):
        read += len(piece)
        if piece.endswith(b"\n"):
            return read, read - 1
    return read, read


def _too_long(start: bytes, length: int) -> bytes:
    """What stands for a line over the limit: malformed by the grammar, naming its size."""
    return b"line over the %d-byte limit (%d bytes), starting: %s\n" % (
        MAX_LINE_BYTES,
        length,
        start[:100].replace(b"\r", b" "),
    )


class StreamBlock:
    """Lines already read from a stream (gzip, stdin). Handed over once: the task queue keeps no
    reference to them, so they are freed as soon as they are parsed."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        data, self._data = self._data, b""
        return data


def _open_input(path: str, stack: ExitStack) -> tuple[BinaryIO, bool]:
    """(stream, is_plain_file), closed with `stack`; gzip is recognised by its magic bytes."""
    try:
        raw = sys.stdin.buffer if path == "-" else stack.enter_context(open(path, "rb"))  # noqa: SIM115
    except OSError as exc:
        raise TriageError(f"cannot read {path}: {exc.strerror}") from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    try:
        head = buffered.peek(2)[:2]
    except OSError as exc:
        raise TriageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head == b"\x1f\x8b":
        return stack.enter_context(gzip.GzipFile(fileobj=buffered)), False
    return buffered, path != "-" and Path(path).is_file()


def _stream_blocks(stream: BinaryIO, path: str) -> Iterator[StreamBlock]:
    """Blocks of whole lines from a stream: about CHUNK_BYTES, then up to the end of that line (a
    line over MAX_LINE_BYTES that ends past the block is skipped as it streams in)."""
    offset = 0  # of the lines read so far (decompressed, for gzip)
    while True:
        try:
            data = stream.read(CHUNK_BYTES)
            if data and not data.endswith(b"\n"):
                data = _finish_last_line(stream, data)
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupted gzip among them
            raise TriageError(f"cannot read {path} past byte {offset} of its lines: {exc}") from None
        if not data:
            return
        offset += len(data)
        yield StreamBlock(data if data.endswith(b"\n") else data + b"\n")


def _finish_last_line(stream: BinaryIO, data: bytes) -> bytes:
    """`data` with its last line read to its end, or that line replaced when it is too long."""
    start = data.rfind(b"\n") + 1
    rest = stream.readline(MAX_LINE_BYTES + 1 - min(len(data) - start, MAX_LINE_BYTES))
    if rest.endswith(b"\n") or len(data) - start + len(rest) <= MAX_LINE_BYTES:
        return data + rest
    _, more = _skip_to_line_end(stream)
    return data[:start] + _too_long(data[start:], len(data) - start + len(rest) + more)


def _tasks(path: str) -> Iterator[RangeTask | StreamBlock]:
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
    timeline: Timeline | None = None  # asked for: analyze(..., timeline=True)

    @property
    def malformed(self) -> int:
        return self.total_lines - self.parsed

    @property
    def endpoint(self) -> str:
        """The requests counted per ally."""
        return "/allies/<id>/..." if self.all_endpoints else "/allies/<id>/credentials"

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
            "statuses": _by_status(self.statuses),
            "failed_requests": self.failed_requests,
            "endpoint": self.endpoint,
            "credential_requests": self.credential_requests,
            "failed_credential_requests": self.failed_credential_requests,
            "affected_allies": [stats.to_dict() for stats in self.affected()],
            "still_affected": len(self.still_affected()),
            **({"failures_over_time": self.timeline.to_dict()} if self.timeline else {}),
        }

    def merge(self, file_index: int, first_line: int, block: logparse.BlockResult) -> None:
        """Add a block's results; blocks come in input order."""
        self.total_lines += block.lines
        self.parsed += block.parsed
        self.in_window += block.in_window
        self.statuses.update(block.statuses)
        if self.timeline is not None:
            self.timeline.add(block.failures)
        room = logparse.MALFORMED_SAMPLES - len(self.malformed_samples)
        for index, text in block.malformed[:room]:
            self.malformed_samples.append(
                {"file": self.files[file_index]["path"], "line": first_line + index + 1, "text": text[:200]}
            )
        # Several counts of a block may name one ally (spellings of its id, lines Python read): their
        # clients are merged in input order, so the first ones listed are exactly the first seen.
        clients: dict[str, list[tuple[int, str]]] = {}
        for counts in block.allies:
            ally = logparse.canonical_ally(counts.ally)
            stats = self.allies.get(ally) or self.allies.setdefault(ally, AllyStats(ally))
            stats.add(counts, file_index, first_line)
            if counts.clients:
                clients.setdefault(ally, []).extend(counts.clients)
        for ally, first_seen in clients.items():
            self.allies[ally].add_clients(first_seen)


def analyze(
    paths: Iterable[str],
    window: Window | None = None,
    all_endpoints: bool = False,
    workers: int | None = None,
    timeline: bool = False,
) -> Report:
    """Read every log in `paths` (`-` is stdin) and build the report; with `timeline`, the failed
    requests over time too (a cost per failed request, so only when asked)."""
    window = window or Window()
    report = Report(window=window, all_endpoints=all_endpoints, timeline=Timeline() if timeline else None)
    scan = functools.partial(
        logparse.analyze_block, window=window, all_endpoints=all_endpoints, timeline=timeline
    )
    # One thread more than CPUs: while one waits for its read or the GIL, the CPUs stay busy.
    workers = workers or len(os.sched_getaffinity(0)) + 1
    jobs = ((i, task) for i, path in enumerate(paths) for task in _with_file(report, path))
    head = list(islice(jobs, 2))
    jobs = chain(head, jobs)
    if len(head) < 2 or workers == 1:  # a single block: not worth starting threads
        for file_index, task in jobs:
            _merge(report, file_index, scan(task.read()))
    else:
        _run_parallel(report, jobs, scan, workers)
    return report


def _with_file(report: Report, path: str) -> Iterator[RangeTask | StreamBlock]:
    report.files.append({"path": path, "lines": 0})
    yield from _tasks(path)


def _merge(report: Report, file_index: int, block: logparse.BlockResult) -> None:
    entry = report.files[file_index]
    report.merge(file_index, entry["lines"], block)
    entry["lines"] += block.lines


def _run_parallel(report: Report, jobs: Iterable, scan: Callable, workers: int) -> None:
    """Blocks analysed in threads, merged in input order; at most `workers + 1` in memory at once."""
    pending: deque[tuple[int, Future]] = deque()
    with ThreadPoolExecutor(workers) as pool:
        for file_index, task in jobs:
            pending.append((file_index, pool.submit(lambda task=task: scan(task.read()))))
            if len(pending) > workers:
                index, future = pending.popleft()
                _merge(report, index, future.result())
        for index, future in pending:
            _merge(report, index, future.result())


def _by_status(counts: Counter) -> dict[str, int]:
    """Counts per status as JSON wants them: string keys, in status order."""
    return {str(status): n for status, n in sorted(counts.items())}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
