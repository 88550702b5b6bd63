"""The application factory: the services, the API, the console, the errors and the log, each
wired by its own `init_app`.

It starts nothing and writes nothing: the settings come resolved (a database URL, a key ring
that exists); the CLI starts the embedded database and makes the local key before it."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable
from datetime import datetime

from flask import Flask, g, request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge, RequestURITooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from ..config import Settings
from ..failures import ConfigError
from . import accesslog, api, console, errors, openapi, services

# Per-line limits of the request head, in bytes (the server bounds the whole head, see server.py):
# what common servers and proxies hold to, so a request that passes here passes in front of us too.
MAX_REQUEST_TARGET = 4094
MAX_HEADER_FIELD = 8190


def _forwarded_addresses_only(wsgi_app):
    """Behind ProxyFix: a forwarded client that is not an IP address (anything a client may have
    typed into X-Forwarded-For: spaces, a forged log line) is ignored, and the peer's address
    stands, so what the limit counts, the audit records and the access log shows is an address."""

    def app(environ, start_response):
        forwarded = environ.get("REMOTE_ADDR", "")
        try:
            ipaddress.ip_address(forwarded)
        except ValueError:
            environ["REMOTE_ADDR"] = environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR") or "-"
        return wsgi_app(environ, start_response)

    return app


def create_app(
    settings: Settings | None = None,
    *,
    echo_log: bool = True,
    clock: Callable[[], datetime] = accesslog.local_now,
) -> Flask:
    """Build the Flask app; the database may be down: requests then answer 503 until it is back."""
    settings = settings or Settings.from_env()
    if settings.database_url is None:
        raise ConfigError(
            "the app needs a database URL (DATABASE_URL); `allies serve` resolves the embedded one"
        )
    app = Flask(__name__)
    if settings.trusted_proxies:
        # Behind a load balancer the client is the address its X-Forwarded-For names: what the
        # write limit counts, the audit records and the access log shows. Trusted only when asked:
        # a client could otherwise choose its own address.
        app.wsgi_app = ProxyFix(_forwarded_addresses_only(app.wsgi_app), x_for=settings.trusted_proxies)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep the contract's key order: message first

    shared = services.init_app(app, settings)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # OPTIONS gets the JSON 405 with Allow, like any method
    # No redirects: werkzeug would build their Location from the client's Host header.
    app.url_map.merge_slashes = False

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = secrets.token_hex(16)

    @app.before_request
    def refuse_an_oversized_head() -> None:
        environ = request.environ
        if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_REQUEST_TARGET:
            raise RequestURITooLarge(f"the path and query are over {MAX_REQUEST_TARGET} bytes")
        for name, value in environ.items():
            if name.startswith("HTTP_") and len(name) + len(value) > MAX_HEADER_FIELD:
                raise RequestHeaderFieldsTooLarge(f"a header field is over {MAX_HEADER_FIELD} bytes")

    @app.after_request
    def security_headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # No page of this app may be framed (/docs is a page with scripts); the console's own
        # policy says more.
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response

    openapi.init_app(app, secured=bool(shared.tokens), rate_limited=shared.limiter is not None)
    errors.init_app(app)
    accesslog.init_app(app, settings.log_file, echo=echo_log, clock=clock)
    api.init_app(app)
    console.init_app(app)
    return app
