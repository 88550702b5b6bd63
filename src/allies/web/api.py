"""The HTTP API: `/allies/<id>/credentials` (the original contract, with versions: ETag, If-Match,
If-None-Match, Idempotency-Key), `.../credentials/versions`, `.../credentials/restore`, `/health`.

Views say only what succeeds; every failure is an exception (`Rejected` from validation, a
refusal of the write path, an HTTP error while reading the body), rendered in the one JSON shape
of `errors` by this blueprint's handlers. Credentials writes go through the write path every face
uses (`credentials.CredentialsWrite`), which audits what fails.

The contract's words live here; the OpenAPI document (openapi.py) reads them.
"""

from __future__ import annotations

import json
import math
import re

import psycopg
from flask import Blueprint, Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .. import auth, credentials
from ..ratelimit import WriteLimited
from ..text import printable
from ..validation import AllyNotFound, BodyTooLarge, Rejected, parse_ally_id
from . import errors
from .services import credentials_write, services

bp = Blueprint("allies", __name__)
health_bp = Blueprint("health", __name__)  # open to probes: no token, no rate limit

# The contract's messages.
CREDENTIALS_ADDED = "Credentials added"
CREDENTIALS_SET = "Ally has credentials set!"
CREDENTIALS_NOT_SET = "Ally does not have credentials set!"
BAD_REQUEST = "The ally was not found or the request is not correct"
NOT_FOUND = "Ally was not found"
AUTHENTICATION_REQUIRED = "Authentication required"
TOO_MANY_REQUESTS = "Too many requests"
CREDENTIALS_RESTORED = "Credentials restored"
CHANGED_SINCE_READ = "The credentials changed since you read them"
PRECONDITION_REQUIRED = "Precondition required"
KEY_REUSED = "Idempotency-Key reused for a different request"
REFUSED_AS_SENT = {413: errors.MESSAGES[413], 422: KEY_REUSED, 428: PRECONDITION_REQUIRED}  # else BAD_REQUEST
READ_BYTES = 64 * 1024
# An entity tag of this API is a version number, quoted: "3". A list of them, or *, in a precondition.
ENTITY_TAG = re.compile(r'"([1-9][0-9]{0,8})"')
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(health_bp)


@bp.before_request
def authenticate() -> None:
    """With tokens configured, every /allies/... request names its caller, or is refused (401).
    A write is admitted by the write path: its limit first, then its caller."""
    tokens = services().tokens
    g.actor = auth.identify(tokens, request.headers.get("Authorization")) if tokens else auth.LOCAL_ACTOR
    if request.method == "POST":
        g.write = credentials_write(g.actor or auth.ANONYMOUS_ACTOR, request.view_args.get("ally_id", ""))
        g.write.admit(authenticated=g.actor is not None)
    elif g.actor is None:
        raise credentials.NotAuthenticated()


@bp.post("/allies/<ally_id>/credentials")
def add_credentials(ally_id: str):
    written = g.write.run(_asked)
    body = {"message": CREDENTIALS_ADDED, "allyId": written.ally_id, "allyName": written.name}
    return _with_version(jsonify(body), written)


@bp.get("/allies/<ally_id>/credentials")
def credentials_status(ally_id: str):
    canonical_id = parse_ally_id(ally_id)
    with services().pool.connection() as conn:
        status = credentials.credentials_status(conn, canonical_id)
    if not status.exists:
        raise AllyNotFound(f"unknown ally: no store has id {canonical_id}")
    if status.is_set:
        return _with_etag(jsonify({"message": CREDENTIALS_SET}), status.version)
    return jsonify({"message": CREDENTIALS_NOT_SET}), 400


@bp.get("/allies/<ally_id>/credentials/versions")
def credentials_versions(ally_id: str):
    canonical_id = parse_ally_id(ally_id)
    with services().pool.connection() as conn:
        found = credentials.versions(conn, canonical_id)
    current = next((row["version"] for row in found if row["current"]), None)
    body = {"allyId": canonical_id, "current": current, "versions": [_version_view(row) for row in found]}
    return _with_etag(jsonify(body), current)


@bp.post("/allies/<ally_id>/credentials/restore")
def restore_credentials(ally_id: str):
    written = g.write.restore(_asked)
    body = {
        "message": CREDENTIALS_RESTORED,
        "allyId": written.ally_id,
        "allyName": written.name,
        "version": written.version,
        "restoredFrom": written.restored_from,
    }
    return _with_version(jsonify(body), written)


def _version_view(row: dict) -> dict:
    return {
        "version": row["version"],
        "setAt": row["set_at"].isoformat(),
        "actor": row["actor"],
        "keyId": row["key_id"],
        "requestId": row["request_id"],
        "restoredFrom": row["restored_from"],
        "current": row["current"],
        "destroyed": row["destroyed"],
    }


def _asked() -> credentials.Asked:
    """What this request asks of the write path: its body, precondition and idempotency key."""
    return credentials.Asked(_json_body(), _precondition(), _idempotency_key())


def _precondition() -> credentials.Precondition:
    """If-Match / If-None-Match: `*` or a list of this API's entity tags ("3"); a precise 400 else."""
    match, none_match = request.headers.get("If-Match"), request.headers.get("If-None-Match")
    exists, match_tags = _tags("If-Match", match) if match is not None else (False, None)
    absent, none_tags = _tags("If-None-Match", none_match) if none_match is not None else (False, None)
    return credentials.Precondition(match=match_tags, exists=exists, none_match=none_tags, absent=absent)


def _tags(header: str, value: str) -> tuple[bool, tuple[int, ...] | None]:
    """(any, None) for `*`, else (False, the versions listed)."""
    if value.strip() == "*":
        return True, None
    items = [item.strip() for item in value.split(",")]
    versions = [ENTITY_TAG.fullmatch(item) for item in items]
    if not value.strip() or not all(versions):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise Rejected(
            f'malformed {header}: send * or versions as the ETag gives them, e.g. "3"; got {shown!r}'
        )
    return False, tuple(int(found[1]) for found in versions)


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise Rejected(
            "malformed Idempotency-Key: 1-128 printable ASCII characters, not starting or ending with a space"
        )
    return key


def _with_version(response, written: credentials.Written):
    if written.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _with_etag(response, written.version)


def _with_etag(response, version: int | None):
    if version:
        response.headers["ETag"] = f'"{version}"'
    return response


# -- failures: rendered in one shape (the write path has audited those of a write) ------------


@bp.errorhandler(Rejected)
def rejected(exc: Rejected):
    """The contract: a bad POST is a 400 with a detail; a GET of a bad or unknown id, a 404."""
    if request.method != "POST":
        return errors.json_error(404, NOT_FOUND)
    return errors.json_error(exc.status, REFUSED_AS_SENT.get(exc.status, BAD_REQUEST), detail=exc.detail)


@bp.errorhandler(credentials.Conflict)
def conflict(exc: credentials.Conflict):
    return _with_etag(errors.json_error(412, CHANGED_SINCE_READ, detail=str(exc)), exc.current)


@bp.errorhandler(credentials.NotAuthenticated)
def not_authenticated(exc: credentials.NotAuthenticated):
    response = errors.json_error(401, AUTHENTICATION_REQUIRED, detail="send Authorization: Bearer <token>")
    response.headers["WWW-Authenticate"] = 'Bearer realm="allies"'
    return response


@bp.errorhandler(WriteLimited)
def write_limited(exc: WriteLimited):
    response = errors.json_error(429, TOO_MANY_REQUESTS, detail=str(exc))
    response.headers["Retry-After"] = exc.retry_after
    return response


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):  # refused before the view (a head over its limits, say)
    write = g.get("write")
    if write is None and request.method == "POST":  # refused before the write path began
        actor = g.get("actor") or auth.ANONYMOUS_ACTOR
        write = credentials_write(actor, (request.view_args or {}).get("ally_id", ""))
    if write is not None:
        write.audit_failure("rejected", exc.code or 400, exc.name)
    return errors.render_http_error(exc)


@bp.errorhandler(Exception)
def unexpected(exc: Exception):  # the write path has audited a failed write
    if isinstance(exc, psycopg.OperationalError):
        return errors.database_unavailable(exc)
    return errors.server_error(exc)


@health_bp.get("/health")
def health():
    """Liveness (the process answers) and readiness (the database answers)."""
    try:
        with services().pool.connection() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        body = {"status": "alive", "database": "unavailable", "message": errors.SERVICE_UNAVAILABLE}
        return jsonify(body), 503, {"Retry-After": str(errors.RETRY_AFTER_SECONDS)}
    return jsonify({"status": "ok", "database": "ok"})


def _json_body() -> object:
    if not request.is_json:
        raise Rejected("the request must be application/json (set Content-Type: application/json)")
    raw = _read_body()
    try:
        return json.loads(
            raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant, parse_float=_finite
        )
    except RecursionError:
        raise Rejected("invalid JSON in the request body: nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise Rejected("invalid JSON in the request body") from None


# RFC 8259 JSON only. A credentials body is a security boundary: a key sent twice is refused (two
# parsers may disagree on which one wins), and so are NaN, Infinity and numbers no float holds.
def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    found: dict = {}
    for key, value in pairs:
        if key in found:
            raise Rejected(f"invalid JSON in the request body: the key {printable(key)[:40]!r} appears twice")
        found[key] = value
    return found


def _no_constant(name: str) -> object:
    raise Rejected(f"invalid JSON in the request body: {name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Rejected("invalid JSON in the request body: a number out of range")
    return value


STRICT_JSON = {
    "object_pairs_hook": _no_duplicate_keys,
    "parse_constant": _no_constant,
    "parse_float": _finite,
}


def _read_body() -> bytes:
    """The whole body, whatever its framing (Content-Length or chunked). Past the size limit the
    stream raises 413 for both; a body shorter than its Content-Length is refused, not parsed.
    (granian ends the stream where the framing breaks, e.g. at an invalid chunk size, without an
    error: what came before it is then parsed, and a cut JSON document is invalid JSON.)"""
    body = bytearray()
    try:
        while chunk := request.stream.read(READ_BYTES):
            body += chunk
    except RequestEntityTooLarge:
        raise BodyTooLarge(f"the limit is {request.max_content_length} bytes") from None
    except HTTPException:
        raise
    except Exception:  # Flask's development server raises where the framing breaks
        raise Rejected("the request body cannot be read: malformed chunked encoding or length") from None
    if request.content_length is not None and len(body) < request.content_length:
        raise Rejected("the request body cannot be read: it ended before its Content-Length")
    return bytes(body)
