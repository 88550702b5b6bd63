"""The API contract as OpenAPI 3.1 (/openapi.json) and its interactive docs (/docs, served offline)."""

from __future__ import annotations

from flask import Flask, jsonify

from ..validation import MAX_ALLY_ID_CHARS, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, MAX_VERSION
from . import api
from .errors import MESSAGES, SERVICE_UNAVAILABLE


def _message(*values: str, detail: bool = False) -> dict:
    properties: dict = {"message": {"type": "string", **({"enum": list(values)} if values else {})}}
    if detail:
        properties["detail"] = {"type": "string"}
    return {
        "type": "object",
        "required": ["message", *(["detail"] if detail else [])],
        "properties": properties,
    }


def _response(description: str, schema: dict, **headers: str) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = {
            name: {"schema": {"type": "string"}, "description": text} for name, text in headers.items()
        }
    return response


BAD = _response(
    "Unknown ally, malformed id, or a missing / empty / non-string / too long field, invalid JSON, not JSON",
    _message(api.BAD_REQUEST, detail=True),
)
UNAUTHORIZED = _response(
    "Tokens are configured and the request has none, or a wrong one",
    _message(api.AUTHENTICATION_REQUIRED, detail=True),
    **{"WWW-Authenticate": 'Bearer realm="allies"'},
)
NOT_FOUND_PATH = _response("No such path (for instance an id containing a slash)", _message(MESSAGES[404]))
NO_SUCH_ALLY = _response(
    "No such ally (or a malformed id, or no such path)", _message(api.NOT_FOUND, MESSAGES[404])
)
SERVER_ERROR = _response("Unexpected error: never a traceback, never a secret", _message(MESSAGES[500]))
UNAVAILABLE = _response(
    "The database is unreachable; the service recovers by itself", _message(SERVICE_UNAVAILABLE),
    **{"Retry-After": "seconds"},
)  # fmt: skip


ETAG = {"ETag": 'The current version, quoted: "3" (send it back in If-Match)'}
PRECONDITIONS = [
    {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'Write only if the current version is one of these ("3", or a list), or * (any)',
        "schema": {"type": "string"},
    },
    {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "* : write only if the ally has no credentials",
        "schema": {"type": "string"},
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "1-128 printable ASCII characters: the same key from the same caller with the same request "
            "within 24 h returns the first answer and writes nothing new"
        ),
        "schema": {"type": "string"},
    },
]


VERSION_ROW = {
    "type": "object",
    "required": ["version", "setAt", "actor", "keyId", "requestId", "restoredFrom", "current", "destroyed"],
    "properties": {
        "version": {"type": "integer", "minimum": 1},
        "setAt": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"},
        "keyId": {"type": ["string", "null"]},
        "requestId": {"type": ["string", "null"]},
        "restoredFrom": {"type": ["integer", "null"]},
        "current": {"type": "boolean"},
        "destroyed": {"type": "boolean"},
    },
}
VERSIONS = {
    "type": "object",
    "required": ["allyId", "current", "versions"],
    "properties": {
        "allyId": {"type": "string"},
        "current": {"type": ["integer", "null"]},
        "versions": {"type": "array", "items": VERSION_ROW},
    },
}


def _json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _write_refusals() -> dict:
    """The answers of a write that refuses, beside 400: its preconditions and its key."""
    return {
        "412": _response(
            "The precondition failed: the credentials changed since the caller read them",
            _message(api.CHANGED_SINCE_READ, detail=True),
            **ETAG,
        ),
        "422": _response(
            "The Idempotency-Key was used for another request", _message(api.KEY_REUSED, detail=True)
        ),
        "428": _response(
            "ALLIES_REQUIRE_IF_MATCH is set and the request has no precondition",
            _message(api.PRECONDITION_REQUIRED, detail=True),
        ),
    }


def document(secured: bool, rate_limited: bool) -> dict:
    """The OpenAPI 3.1 document of this app as configured (tokens, rate limit)."""
    ally_id = {
        "name": "allyId",
        "in": "path",
        "required": True,
        "description": (
            f"The ally (store) id: 1-{MAX_ALLY_ID_CHARS} characters without whitespace, control characters "
            "or '/'; a UUID in any case is the same ally as its lowercase form"
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ALLY_ID_CHARS, "pattern": r"^[^\s/]+$"},
    }
    text = {"type": "string", "minLength": 1, "pattern": r"\S"}
    post_responses = {
        "200": _response(
            "Credentials encrypted and stored as the next version",
            {
                "type": "object",
                "required": ["message", "allyId", "allyName"],
                "properties": {
                    "message": {"type": "string", "enum": [api.CREDENTIALS_ADDED]},
                    "allyId": {"type": "string"},
                    "allyName": {"type": ["string", "null"]},
                },
            },
            **ETAG,
        ),
        "400": BAD,
        "404": NOT_FOUND_PATH,
        "413": _response("Body over the size limit", _message(MESSAGES[413], detail=True)),
        **_write_refusals(),
        "500": SERVER_ERROR,
        "503": UNAVAILABLE,
    }
    restore_responses = {
        "200": _response(
            "The version's data written as the next version",
            {
                "type": "object",
                "required": ["message", "allyId", "allyName", "version", "restoredFrom"],
                "properties": {
                    "message": {"type": "string", "enum": [api.CREDENTIALS_RESTORED]},
                    "allyId": {"type": "string"},
                    "allyName": {"type": ["string", "null"]},
                    "version": {"type": "integer", "minimum": 1},
                    "restoredFrom": {"type": "integer", "minimum": 1},
                },
            },
            **ETAG,
        ),
        "400": _response(
            "Unknown ally or version, a destroyed version, a malformed id, body or precondition",
            _message(api.BAD_REQUEST, detail=True),
        ),
        "404": NOT_FOUND_PATH,
        "413": post_responses["413"],
        **_write_refusals(),
        "500": SERVER_ERROR,
        "503": UNAVAILABLE,
    }
    versions_responses = {
        "200": _response("The ally's versions, newest first (never a secret)", VERSIONS, **ETAG),
        "404": NO_SUCH_ALLY,
        "500": SERVER_ERROR,
        "503": UNAVAILABLE,
    }
    if rate_limited:
        post_responses["429"] = restore_responses["429"] = _response(
            "Too many writes from this client",
            _message(api.TOO_MANY_REQUESTS, detail=True),
            **{"Retry-After": "seconds"},
        )
    get_responses = {
        "200": _response("Credentials are set", _message(api.CREDENTIALS_SET), **ETAG),
        "400": _response("Credentials are not set", _message(api.CREDENTIALS_NOT_SET)),
        "404": NO_SUCH_ALLY,
        "500": SERVER_ERROR,
        "503": UNAVAILABLE,
    }
    if secured:
        for responses in (post_responses, get_responses, restore_responses, versions_responses):
            responses["401"] = UNAUTHORIZED
    credentials_path = {
        "parameters": [ally_id],
        "get": {
            "summary": "Whether the ally has credentials set",
            "operationId": "credentialsStatus",
            "responses": get_responses,
        },
        "post": {
            "summary": "Store the ally's partner credentials, encrypted (AES-256-GCM)",
            "operationId": "addCredentials",
            "parameters": PRECONDITIONS,
            "requestBody": _json_body(
                {
                    "type": "object",
                    "description": "`user` is accepted for `username` (one of the two, not both)",
                    "properties": {
                        "username": {**text, "maxLength": MAX_USERNAME_CHARS},
                        "user": {**text, "maxLength": MAX_USERNAME_CHARS},
                        "password": {**text, "maxLength": MAX_PASSWORD_CHARS},
                    },
                    "required": ["password"],
                    "oneOf": [{"required": ["username"]}, {"required": ["user"]}],
                }
            ),
            "responses": post_responses,
        },
    }
    versions_path = {
        "parameters": [ally_id],
        "get": {
            "summary": "The ally's credentials versions: number, time, actor, key id, request id, state",
            "operationId": "credentialsVersions",
            "responses": versions_responses,
        },
    }
    restore_path = {
        "parameters": [ally_id],
        "post": {
            "summary": "Write a kept version's data as the next version (audited)",
            "operationId": "restoreCredentials",
            "parameters": PRECONDITIONS,
            "requestBody": _json_body(
                {
                    "type": "object",
                    "properties": {"version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}},
                    "required": ["version"],
                }
            ),
            "responses": restore_responses,
        },
    }
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "allies",
            "version": "1.0.0",
            "description": "Partner credentials of the allies (merchant stores); see docs/api.md.",
        },
        "paths": {
            "/allies/{allyId}/credentials": credentials_path,
            "/allies/{allyId}/credentials/versions": versions_path,
            "/allies/{allyId}/credentials/restore": restore_path,
            "/health": {
                "get": {
                    "summary": "Liveness and database readiness",
                    "operationId": "health",
                    "responses": {
                        "200": _response(
                            "Alive and the database answers",
                            {
                                "type": "object",
                                "required": ["status", "database"],
                                "properties": {"status": {"const": "ok"}, "database": {"const": "ok"}},
                            },
                        ),
                        "503": UNAVAILABLE,
                    },
                }
            },
        },
    }
    if secured:
        doc["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        operations = (
            credentials_path["get"],
            credentials_path["post"],
            versions_path["get"],
            restore_path["post"],
        )
        for operation in operations:
            operation["security"] = [{"bearer": []}]
    return doc


def init_app(app: Flask, secured: bool, rate_limited: bool) -> None:
    from swagger_ui import api_doc

    contract = document(secured, rate_limited)
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(contract))
    # Swagger UI's assets come from the swagger-ui-py wheel and are served by this app: no CDN.
    api_doc(app, config=contract, url_prefix="/docs", title="allies API", editor=False)
