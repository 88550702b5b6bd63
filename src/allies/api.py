"""The HTTP API: `/allies/<id>/credentials` (the original contract) and `/health`.

Views say only what succeeds; every failure is an exception (`Rejected` from validation, a
`Refusal`, an HTTP error while reading the body) that the blueprint's handlers audit, when it is
a credentials write, and render in the one JSON shape of `errors`.
"""

from __future__ import annotations

import json

import psycopg
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import audit, auth, credentials, errors, ratelimit
from .errors import Refusal
from .validation import AllyNotFound, Rejected, parse_ally_id, parse_body

bp = Blueprint("allies", __name__)
health_bp = Blueprint("health", __name__)  # open to probes: no token, no rate limit

BAD_REQUEST = "The ally was not found or the request is not correct"
NOT_FOUND = "Ally was not found"
READ_BYTES = 64 * 1024
REFUSALS_AUDITED_PER_MINUTE = 10  # per client address; see _audit_refusal


@bp.before_request
def authenticate() -> None:
    """With tokens configured, every /allies/... request names its caller, or is refused (401).

    The write limit applies before authentication, so a flood without a token is limited like any
    other; refusals are audited sampled per client address (see `_audit_refusal`)."""
    tokens = current_app.extensions["allies.tokens"]
    g.actor = auth.identify(tokens, request.headers.get("Authorization")) if tokens else auth.LOCAL_ACTOR
    if request.method == "POST":
        g.attempt = _attempt(request.view_args.get("ally_id", ""))
        _check_rate_limit()
    if g.actor is None:
        raise Refusal(
            401,
            "Authentication required",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="allies"'},
            audit=("unauthorized", "missing or wrong token"),
        )


def _check_rate_limit() -> None:
    limiter = current_app.extensions["allies.limiter"]
    wait = limiter.acquire(request.remote_addr or "-") if limiter else 0
    if wait:
        raise Refusal(
            429,
            "Too many requests",
            f"the limit is {limiter.limit}",
            headers={"Retry-After": ratelimit.retry_after(wait)},
            audit=("rate_limited", f"limit: {limiter.limit}"),
        )


@bp.post("/allies/<ally_id>/credentials")
def add_credentials(ally_id: str):
    canonical_id = parse_ally_id(ally_id)
    username, password = parse_body(_json_body())
    keyring = current_app.extensions["allies.keyring"]
    with _pool().connection() as conn:
        name = credentials.set_credentials(conn, keyring, canonical_id, username, password, g.attempt)
    return jsonify({"message": "Credentials added", "allyId": canonical_id, "allyName": name})


@bp.get("/allies/<ally_id>/credentials")
def credentials_status(ally_id: str):
    canonical_id = parse_ally_id(ally_id)
    with _pool().connection() as conn:
        status = credentials.credentials_status(conn, canonical_id)
    if not status.exists:
        raise AllyNotFound(f"unknown ally: no store has id {canonical_id}")
    if status.is_set:
        return jsonify({"message": "Ally has credentials set!"})
    return jsonify({"message": "Ally does not have credentials set!"}), 400


# -- failures: audited when they refuse a credentials write, rendered in one shape ------------


@bp.errorhandler(Rejected)
def rejected(exc: Rejected):
    """The contract: a bad POST is a 400 with a detail; a GET of a bad or unknown id, a 404."""
    if request.method != "POST":
        return errors.json_error(404, NOT_FOUND)
    _audit_failure("rejected", 400, exc.detail)
    return errors.json_error(400, BAD_REQUEST, detail=exc.detail)


@bp.errorhandler(Refusal)
def refused(exc: Refusal):
    if exc.audit and request.method == "POST":
        _audit_refusal(*exc.audit, status=exc.status)
    return errors.render_refusal(exc)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):  # e.g. 413, raised while reading the body
    if request.method == "POST":
        _audit_failure("rejected", exc.code or 400, exc.name)
    return errors.render_http_error(exc)


@bp.errorhandler(Exception)
def unexpected(exc: Exception):
    if isinstance(exc, psycopg.OperationalError):  # the database is down: nowhere to write the audit row
        return errors.database_unavailable(exc)
    if request.method == "POST":
        _audit_failure("error", 500, "server error")
    return errors.server_error(exc)


@health_bp.get("/health")
def health():
    """Liveness (the process answers) and readiness (the database answers)."""
    try:
        with _pool().connection() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        body = {"status": "alive", "database": "unavailable", "message": "Service unavailable"}
        return jsonify(body), 503, {"Retry-After": str(errors.RETRY_AFTER_SECONDS)}
    return jsonify({"status": "ok", "database": "ok"})


def _attempt(ally_id: str) -> audit.Attempt:
    return audit.Attempt(
        actor=g.get("actor") or auth.ANONYMOUS_ACTOR,
        ally_id=ally_id,
        client_addr=request.remote_addr,
        request_id=g.request_id,
    )


def _pool():
    return current_app.extensions["allies.pool"]


def _json_body() -> object:
    if not request.is_json:
        raise Rejected("the request must be application/json (set Content-Type: application/json)")
    raw = _read_body()
    try:
        return json.loads(raw)
    except RecursionError:
        raise Rejected("invalid JSON in the request body: nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise Rejected("invalid JSON in the request body") from None


def _read_body() -> bytes:
    """The whole body, whatever its framing (Content-Length or chunked). Past the size limit the
    stream raises 413 for both; a body shorter than its Content-Length is refused, not parsed.
    (granian ends the stream where the framing breaks, e.g. at an invalid chunk size, without an
    error: what came before it is then parsed, and a cut JSON document is invalid JSON.)"""
    body = bytearray()
    try:
        while chunk := request.stream.read(READ_BYTES):
            body += chunk
    except HTTPException:
        raise
    except Exception:  # Flask's development server raises where the framing breaks
        raise Rejected("the request body cannot be read: malformed chunked encoding or length") from None
    if request.content_length is not None and len(body) < request.content_length:
        raise Rejected("the request body cannot be read: it ended before its Content-Length")
    return bytes(body)


def _audit_refusal(outcome: str, detail: str, status: int) -> None:
    """Refusals before any work (401, 429) cost an attacker nothing, so they are audited sampled:
    up to REFUSALS_AUDITED_PER_MINUTE per client address; the next audited row counts the rest."""
    sampler = current_app.extensions["allies.refusals"]
    unaudited = sampler.admit(request.remote_addr or "-")
    if unaudited is None:
        return
    note = f" (+{unaudited} earlier refusals of this address not audited)" if unaudited else ""
    _audit_failure(outcome, status, detail + note)


def _audit_failure(outcome: str, status: int, detail: str) -> None:
    """Best effort: a failed attempt is audited in its own transaction."""
    attempt = g.attempt  # set by authenticate for every POST, the only requests audited
    try:
        with _pool().connection() as conn:
            audit.record(conn, attempt, outcome, status, detail)
    except psycopg.Error:
        current_app.logger.warning("could not audit failed request %s", attempt.request_id)
