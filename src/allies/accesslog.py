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
    size = response.content_length or "-"
    request_line = _escape(f"{req.method} {req.path} {req.environ.get('SERVER_PROTOCOL', '-')}")
    return (
        f"{req.remote_addr or '-'} - - [{when:%d/%b/%Y:%H:%M:%S %z}] "
        f'"{request_line}" {response.status_code} {size}'
    )


def local_now() -> datetime:
    return datetime.now().astimezone()


def init_app(
    app: Flask, log_file: Path, echo: bool = True, clock: Callable[[], datetime] = local_now
) -> None:
    """Log every request of `app`, appending to `log_file` (and echoing to stdout).

    `clock` gives each line's time (a simulated one for the reproducible demo log). The file is
    opened once per process in append mode: each line is one write(2), whole even with several
    workers writing; rotate it with copytruncate (or restart the service)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor: list[int] = []  # opened on the first request, in the worker process that serves it

    @app.after_request
    def write_access_line(response: Response) -> Response:
        line = (format_line(request, response, clock()) + "\n").encode("ascii")
        if not descriptor:
            descriptor.append(os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
        os.write(descriptor[0], line)
        if echo:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        return response
