"""The HTTP API: `/allies/<id>/credentials` (the original contract) and `/health`."""

from __future__ import annotations

import json

import psycopg
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import audit, auth, credentials, errors, ratelimit
from .validation import Rejected, parse_ally_id, parse_body

bp = Blueprint("allies", __name__)

BAD_REQUEST = "The ally was not found or the request is not correct"


@bp.before_request
def authenticate():
    """With tokens configured, every /allies/... request names its caller, or is refused (401)."""
    tokens = current_app.extensions["allies.tokens"]
    if not request.path.startswith("/allies/"):
        return None
    if not tokens:
        g.actor = auth.LOCAL_ACTOR
        return None
    g.actor = auth.identify(tokens, request.headers.get("Authorization"))
    if g.actor is not None:
        return None
    if request.method == "POST":
        _record_failure(
            _attempt(request.view_args.get("ally_id", "")), "unauthorized", 401, "missing or wrong token"
        )
    response = jsonify({"message": "Authentication required", "detail": "send Authorization: Bearer <token>"})
    response.headers["WWW-Authenticate"] = 'Bearer realm="allies"'
    return response, 401


def _attempt(ally_id: str) -> audit.Attempt:
    return audit.Attempt(
        actor=g.get("actor") or auth.ANONYMOUS_ACTOR,
        ally_id=ally_id,
        client_addr=request.remote_addr,
        request_id=g.request_id,
    )


def _pool():
    return current_app.extensions["allies.pool"]


@bp.post("/allies/<ally_id>/credentials")
def add_credentials(ally_id: str):
    attempt = _attempt(ally_id)
    limiter = current_app.extensions["allies.limiter"]
    wait = limiter.acquire(request.remote_addr or "-") if limiter else 0
    if wait:
        _record_failure(attempt, "rate_limited", 429, f"limit: {limiter.limit}")
        body = {"message": "Too many requests", "detail": f"the limit is {limiter.limit}"}
        return jsonify(body), 429, {"Retry-After": ratelimit.retry_after(wait)}
    try:
        canonical_id = parse_ally_id(ally_id)
        username, password = parse_body(_json_body())
        with _pool().connection() as conn:
            keyring = current_app.extensions["allies.keyring"]
            name = credentials.set_credentials(conn, keyring, canonical_id, username, password, attempt)
    except Rejected as exc:
        _record_failure(attempt, "rejected", 400, exc.detail)
        response = jsonify({"message": BAD_REQUEST, "detail": exc.detail})
        return response, 400
    except HTTPException as exc:  # e.g. 413, raised while reading the body
        _record_failure(attempt, "rejected", exc.code or 400, exc.name)
        raise
    except psycopg.OperationalError:
        raise  # the database is down: there is nowhere to write the audit row
    except Exception:
        _record_failure(attempt, "error", 500, "server error")
        raise
    return jsonify({"message": "Credentials added", "allyId": canonical_id, "allyName": name})


@bp.get("/allies/<ally_id>/credentials")
def credentials_status(ally_id: str):
    try:
        canonical_id = parse_ally_id(ally_id)
    except Rejected:
        return jsonify({"message": "Ally was not found"}), 404
    with _pool().connection() as conn:
        status = credentials.credentials_status(conn, canonical_id)
    if not status.exists:
        return jsonify({"message": "Ally was not found"}), 404
    if status.is_set:
        return jsonify({"message": "Ally has credentials set!"})
    return jsonify({"message": "Ally does not have credentials set!"}), 400


@bp.get("/health")
def health():
    """Liveness (the process answers) and readiness (the database answers)."""
    try:
        with _pool().connection() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        body = {"status": "alive", "database": "unavailable", "message": "Service unavailable"}
        return jsonify(body), 503, {"Retry-After": str(errors.RETRY_AFTER_SECONDS)}
    return jsonify({"status": "ok", "database": "ok"})


def _json_body() -> object:
    if not request.is_json:
        raise Rejected("the request must be application/json (set Content-Type: application/json)")
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected("invalid JSON in the request body") from None


def _record_failure(attempt: audit.Attempt, outcome: str, status: int, detail: str) -> None:
    """Best effort: a failed attempt is audited in its own transaction."""
    try:
        with _pool().connection() as conn:
            audit.record(conn, attempt, outcome, status, detail)
    except psycopg.Error:
        current_app.logger.warning("could not audit failed request %s", attempt.request_id)
