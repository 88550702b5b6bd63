"""The server log: one Apache common log format line per request, to the terminal and a file.

Query strings and bodies are never written: either may carry a secret.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from flask import Flask, Request, Response, request

# Like Apache, escape what could forge a log line: quotes, backslashes, control characters.
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f-\xff]')


def _escape(text: str) -> str:
    raw = text.encode("utf-8", "backslashreplace").decode("latin-1")
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", raw)


def format_line(req: Request, response: Response, when: datetime) -> str:
    """`host - - [time] "METHOD /path PROTOCOL" status size`."""
    request_line = f"{req.method} {req.path} {req.environ.get('SERVER_PROTOCOL', '-')}"
    return clf_line(req.remote_addr, when, request_line, response.status_code, response.content_length)


def clf_line(
    remote_addr: str | None, when: datetime, request_line: str, status: int, size: int | None
) -> str:
    """One common log format line; the client's text (the request line, and the address, which a
    proxy may have taken from a header) is escaped, so one request is exactly one line."""
    host = _escape(remote_addr or "-").replace(" ", "\\x20")  # one field: never a space in it
    return f'{host} - - [{when:%d/%b/%Y:%H:%M:%S %z}] "{_escape(request_line)}" {status} {size or "-"}'


def local_now() -> datetime:
    return datetime.now().astimezone()


class AccessLog:
    """Appends lines to the log file (and echoes them to stdout). The file is opened once per
    process, on the first line, in append mode: each line is one write(2), whole even with several
    workers writing; rotate it with copytruncate (or restart the service)."""

    def __init__(self, path: Path, echo: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.echo = path, echo
        self._descriptor: int | None = None  # opened in the worker process that writes

    def write(self, line: str) -> None:
        data = (line + "\n").encode("ascii")
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.write(self._descriptor, data)
        if self.echo:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()


def init_app(
    app: Flask, log_file: Path, echo: bool = True, clock: Callable[[], datetime] = local_now
) -> None:
    """Log every request of `app` to `log_file` (and stdout); `clock` gives each line's time (a
    simulated one for the reproducible demo log)."""
    log = AccessLog(log_file, echo)

    @app.after_request
    def write_access_line(response: Response) -> Response:
        log.write(format_line(request, response, clock()))
        return response
