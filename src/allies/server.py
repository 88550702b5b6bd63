"""Serving the app: gunicorn in production, Flask's reloading server with --dev."""

from __future__ import annotations

import contextlib
import json
import os

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from . import accesslog, errors
from .app import create_app
from .config import Settings

THREADS_PER_WORKER = 4


def default_workers() -> int:
    """One worker per CPU; each serves THREADS_PER_WORKER requests at once."""
    return max(1, len(os.sched_getaffinity(0)))


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict) -> None:
        self.settings, self.options = settings, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # One app (and one connection pool) per worker process, from the settings the master
        # resolved (forked with it: no environment variable passes them on).
        return create_app(self.settings)


def run_gunicorn(
    settings: Settings, host: str, port: int, workers: int, threads: int = THREADS_PER_WORKER
) -> None:
    _Gunicorn(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "allies.server.Worker",
            "threads": threads,
            "keepalive": 5,
            "timeout": 30,
            "graceful_timeout": 10,
            "accesslog": None,  # the app writes its own access log (log/server.log)
            "errorlog": "-",
            "proc_name": "allies",
            "control_socket_disable": True,  # one fixed socket path would clash between instances
            "worker_exit": lambda _server, worker: worker.wsgi.extensions["allies.pool"].close(),
        },
    ).run()


class Worker(ThreadWorker):
    """gunicorn's threaded worker, except for the requests it refuses before the app sees them
    (a request line over the limit, malformed headers or framing): they are answered in the API's
    JSON error shape, not gunicorn's HTML page, and written to the access log like any request."""

    def handle_error(self, req, client, addr, exc) -> None:
        page = _Captured(client)
        super().handle_error(req, page, addr, exc)  # gunicorn decides the status; we keep only that
        status_line = page.data.split(b"\r\n", 1)[0].decode("latin-1")  # HTTP/1.1 414 URI Too Long
        _, status, reason = (status_line.split(" ", 2) + ["", ""])[:3]
        code = int(status) if status.isdigit() else 500
        body = {"message": errors.MESSAGES.get(code, reason or "Server error")}
        if 400 <= code < 500:
            body["detail"] = str(exc)[: errors.MAX_DETAIL_CHARS]
        payload = (json.dumps(body, separators=(",", ":")) + "\n").encode()  # as Flask writes it
        head = (
            f"HTTP/1.1 {code} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # the client may be gone
            client.sendall(head.encode("latin-1") + payload)
        log = self.wsgi.extensions["allies.accesslog"]
        remote = addr[0] if addr else None
        log.write(accesslog.clf_line(remote, accesslog.local_now(), _request_line(req), code, len(payload)))


def _request_line(req) -> str:
    """What gunicorn parsed of the request line, or "-" when it could parse none."""
    if req is None or not getattr(req, "method", None):
        return "-"
    version = f" HTTP/{req.version[0]}.{req.version[1]}" if getattr(req, "version", None) else ""
    return f"{req.method} {req.path or ''}{version}"


class _Captured:
    """A client socket whose writes are kept instead of sent (everything else is the socket's)."""

    def __init__(self, sock) -> None:
        self._sock, self.data = sock, b""

    def sendall(self, data: bytes) -> None:
        self.data += data

    send = sendall

    def gettimeout(self) -> float:
        return 0.0  # so gunicorn's write_nonblock neither changes nor restores blocking mode

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def run_dev(settings: Settings, host: str, port: int) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our access log already prints
    # No debug mode: its debugger would show tracebacks (and secrets in them) to clients.
    create_app(settings).run(host=host, port=port, debug=False, use_reloader=True)
