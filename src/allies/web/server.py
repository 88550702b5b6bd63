"""Serving the app: granian (a Rust HTTP server for WSGI apps) in production, Flask's reloading
server with --dev.

Why granian and what it changes: docs/performance.md ("The API server")."""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import signal
from functools import partial

from flask import Flask

from ..config import Settings
from .app import create_app
from .services import services

THREADS_PER_WORKER = 2  # measured best on granian (docs/performance.md): more threads, more GIL contention
GRACEFUL_SECONDS = 10  # a stopping worker finishes its requests for this long, then is killed
MAX_HEAD_BYTES = 64 * 1024  # the server's read buffer: a head past ~2x this gets its bare 431
# The server's own messages (start, workers spawned or lost) go to stderr; stdout is the access log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"server": {"format": "allies: server: %(message)s"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "server", "stream": "ext://sys.stderr"}
    },
    "loggers": {"_granian": {"handlers": ["stderr"], "propagate": False}},
}


def default_workers() -> int:
    """One worker per CPU; each serves THREADS_PER_WORKER requests at once."""
    return max(1, len(os.sched_getaffinity(0)))


def run(settings: Settings, host: str, port: int, workers: int, threads: int = THREADS_PER_WORKER) -> None:
    """Serve until Ctrl-C or SIGTERM; a worker that dies is replaced."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    # The workers receive the resolved settings (key ring included) by fork: never through the
    # environment, a file or a pipe. Python 3.14 no longer forks by default.
    multiprocessing.set_start_method("fork", force=True)
    Granian(
        "allies",  # only names the server in its messages: the app comes from the loader below
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(max_buffer_size=MAX_HEAD_BYTES),
        websockets=False,
        workers=workers,
        blocking_threads=threads,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SECONDS,
        log_dictconfig=LOGGING,
    ).serve(target_loader=partial(load_worker, settings), wrap_loader=False)


def load_worker(settings: Settings):
    """What one worker process serves (granian calls this in the worker).

    Ctrl-C in a terminal signals the whole process group: each worker would get SIGINT from the
    terminal and SIGTERM from granian's main process at once, and about one stop in four a worker
    then never finished (granian killed it after GRACEFUL_SECONDS: a 10 s Ctrl-C). A worker takes
    its stop from the main process only: SIGINT is blocked here, before granian starts the
    worker's threads, which inherit the mask."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    return without_process_environment(worker_app(settings))


def worker_app(settings: Settings) -> Flask:
    """The app of one worker process (its own connection pool), closed when the worker stops."""
    app = create_app(settings)
    # The worker ends through multiprocessing, which runs its finalizers (not atexit handlers).
    multiprocessing.util.Finalize(app, services(app).close, exitpriority=0)
    return app


# What the server itself puts in a request's environ (CGI and WSGI names): never taken for a copy.
REQUEST_KEYS = frozenset(
    {
        *("GATEWAY_INTERFACE", "SCRIPT_NAME", "SERVER_SOFTWARE", "SERVER_PROTOCOL", "SERVER_NAME"),
        *("SERVER_PORT", "REMOTE_ADDR", "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING"),
        *("CONTENT_TYPE", "CONTENT_LENGTH"),
    }
)


def without_process_environment(app):
    """granian copies the whole process environment into every request's WSGI environ: a request
    would hold DATABASE_URL, ALLIES_ENCRYPTION_KEYS, PGPASSWORD..., and a variable named like a
    header (HTTP_PROXY) would read as one the client sent. This drops those copies, so a request
    holds only what the server and the client put in it."""
    inherited = {name: value for name, value in os.environ.items() if name not in REQUEST_KEYS}

    def wsgi_app(environ, start_response):
        for name, value in inherited.items():
            if environ.get(name) == value:  # the copy (a header the client sent differs, or is kept)
                del environ[name]
        return app(environ, start_response)

    return wsgi_app


def run_dev(settings: Settings, host: str, port: int) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our access log already prints
    # No debug mode: its debugger would show tracebacks (and secrets in them) to clients.
    create_app(settings).run(host=host, port=port, debug=False, use_reloader=True)
