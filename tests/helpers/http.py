"""The tests' one HTTP client for a served instance (urllib): any method, any body, and every
answer returned, an error status as much as a success."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from email.message import Message
from typing import NamedTuple


class Answer(NamedTuple):
    status: int
    body: bytes
    headers: Message  # case-insensitive, as HTTP header names are

    def json(self):
        return json.loads(self.body)


def send(
    method: str, url: str, body: bytes | dict | None = None, headers: dict | None = None, timeout: float = 10
) -> Answer:
    """One request; a dict body is sent as JSON (with its Content-Type)."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return Answer(response.status, response.read(), response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.read(), error.headers)


def wait_for_http(url: str, timeout: float = 30.0, process=None) -> None:
    """Until `url` answers (any status); fails early when `process` (the server) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            send("GET", url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")
