"""The HTTP API: `/allies/<id>/credentials` (the original contract) and `/health`."""

from __future__ import annotations

import json

import psycopg
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import audit, auth, credentials, errors, ratelimit
from .validation import Rejected, parse_ally_id, parse_body

bp = Blueprint("allies", __name__)
health_bp = Blueprint("health", __name__)  # open to probes: no token, no rate limit

BAD_REQUEST = "The ally was not found or the request is not correct"
READ_BYTES = 64 * 1024
REFUSALS_AUDITED_PER_MINUTE = 10  # per client address; see _record_refusal


@bp.before_request
def authenticate():
    """With tokens configured, every /allies/... request names its caller, or is refused (401).

    The write limit applies before authentication, so a flood without a token is limited like any
    other; refusals are audited, sampled per client address (see `_record_refusal`)."""
    if request.method == "POST" and (refused := _rate_limited()) is not None:
        return refused
    tokens = current_app.extensions["allies.tokens"]
    if not tokens:
        g.actor = auth.LOCAL_ACTOR
        return None
    g.actor = auth.identify(tokens, request.headers.get("Authorization"))
    if g.actor is not None:
        return None
    if request.method == "POST":
        _record_refusal(
            _attempt(request.view_args.get("ally_id", "")), "unauthorized", 401, "missing or wrong token"
        )
    response = jsonify({"message": "Authentication required", "detail": "send Authorization: Bearer <token>"})
    response.headers["WWW-Authenticate"] = 'Bearer realm="allies"'
    return response, 401


def _rate_limited():
    """The 429 answer when this client is over the write limit, else None."""
    limiter = current_app.extensions["allies.limiter"]
    wait = limiter.acquire(request.remote_addr or "-") if limiter else 0
    if not wait:
        return None
    attempt = _attempt(request.view_args.get("ally_id", ""))
    _record_refusal(attempt, "rate_limited", 429, f"limit: {limiter.limit}")
    body = {"message": "Too many requests", "detail": f"the limit is {limiter.limit}"}
    return jsonify(body), 429, {"Retry-After": ratelimit.retry_after(wait)}


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
    stream raises 413 for both: the body is never silently cut and then parsed."""
    body = bytearray()
    try:
        while chunk := request.stream.read(READ_BYTES):
            body += chunk
    except HTTPException:
        raise
    except Exception:  # the server's parser refused the framing (e.g. an invalid chunk size)
        raise Rejected("the request body cannot be read: malformed chunked encoding or length") from None
    return bytes(body)


def _record_refusal(attempt: audit.Attempt, outcome: str, status: int, detail: str) -> None:
    """Refusals before any work (401, 429) cost an attacker nothing, so they are audited sampled:
    up to REFUSALS_AUDITED per client address and minute; the next audited row counts the rest."""
    sampler = current_app.extensions["allies.refusals"]
    unaudited = sampler.admit(attempt.client_addr or "-")
    if unaudited is None:
        return
    note = f" (+{unaudited} earlier refusals of this address not audited)" if unaudited else ""
    _record_failure(attempt, outcome, status, detail + note)


def _record_failure(attempt: audit.Attempt, outcome: str, status: int, detail: str) -> None:
    """Best effort: a failed attempt is audited in its own transaction."""
    try:
        with _pool().connection() as conn:
            audit.record(conn, attempt, outcome, status, detail)
    except psycopg.Error:
        current_app.logger.warning("could not audit failed request %s", attempt.request_id)
