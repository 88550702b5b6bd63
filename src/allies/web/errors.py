"""One JSON shape for every failure; database and Python details never reach the client."""

from __future__ import annotations

import logging

import psycopg
from flask import Flask, current_app, g, jsonify
from werkzeug.exceptions import HTTPException

RETRY_AFTER_SECONDS = 5  # what a client is told to wait while the database is unavailable
SERVICE_UNAVAILABLE = "Service unavailable"
logger = logging.getLogger("allies.errors")

MESSAGES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    414: "Request line too long",
    431: "Request headers too large",
    500: "Server error",
}


def json_error(status: int, message: str, **extra: str):
    response = jsonify({"message": message, **extra})
    response.status_code = status
    return response


def render_http_error(exc: HTTPException):
    code = exc.code or 500
    if 300 <= code < 400:  # a routing redirect: its Location would come from the Host header
        return json_error(404, MESSAGES[404])
    extra = {}
    if code == 413:
        extra["detail"] = f"the limit is {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    elif code in (414, 431):
        extra["detail"] = exc.description  # written where the limit is checked (app.py)
    response = json_error(code, MESSAGES.get(code, exc.name), **extra)
    if code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def database_unavailable(exc: Exception):
    """Covers connection failures and psycopg_pool.PoolTimeout (an OperationalError too)."""
    # The driver's message may quote SQL parameters: log the type only, never the text.
    logger.warning("database unavailable (%s) in request %s", type(exc).__name__, _rid())
    response = json_error(503, SERVICE_UNAVAILABLE)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(exc: Exception):
    logger.error("unhandled %s in request %s", type(exc).__name__, _rid())
    return json_error(500, MESSAGES[500])


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(psycopg.OperationalError, database_unavailable)
    app.register_error_handler(Exception, server_error)


def _rid() -> str:
    return g.get("request_id", "-")
