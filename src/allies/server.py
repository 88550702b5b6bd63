"""Serving the app: gunicorn in production, Flask's reloading server with --dev."""

from __future__ import annotations

import os

from gunicorn.app.base import BaseApplication

from .app import create_app

THREADS_PER_WORKER = 4


def default_workers() -> int:
    """One worker per CPU; each serves THREADS_PER_WORKER requests at once."""
    return max(1, len(os.sched_getaffinity(0)))


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app()  # one app (and one connection pool) per worker process


def run_gunicorn(host: str, port: int, workers: int, threads: int = THREADS_PER_WORKER) -> None:
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "keepalive": 5,
            "timeout": 30,
            "graceful_timeout": 10,
            "accesslog": None,  # the app writes its own access log (log/server.log)
            "errorlog": "-",
            "proc_name": "allies",
            "control_socket_disable": True,  # one fixed socket path would clash between instances
        }
    ).run()


def run_dev(host: str, port: int) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our access log already prints
    # No debug mode: its debugger would show tracebacks (and secrets in them) to clients.
    create_app().run(host=host, port=port, debug=False, use_reloader=True)
