"""The application factory: wires settings, database pool, key ring, API, errors and the log."""

from __future__ import annotations

import atexit
import secrets
from collections.abc import Callable
from datetime import datetime

from flask import Flask, g

from . import accesslog, api, auth, db, errors, openapi, ratelimit
from .config import Settings
from .crypto import load_keyring


def create_app(
    settings: Settings | None = None,
    *,
    echo_log: bool = True,
    clock: Callable[[], datetime] = accesslog.local_now,
) -> Flask:
    """Build the Flask app; the database may be down: requests then answer 503 until it is back."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep the contract's key order: message first

    pool = db.create_pool(db.database_url(settings), timeout=settings.db_timeout_seconds)
    atexit.register(pool.close)
    app.extensions["allies.pool"] = pool
    app.extensions["allies.keyring"] = load_keyring(settings)
    app.extensions["allies.tokens"] = auth.load_tokens(settings.api_tokens, settings.api_tokens_file)
    limit = ratelimit.Limit.parse(settings.write_rate_limit)
    app.extensions["allies.limiter"] = ratelimit.Limiter(limit) if limit else None
    app.extensions["allies.refusals"] = ratelimit.Sampler(
        ratelimit.Limit(api.REFUSALS_AUDITED_PER_MINUTE, 60)
    )
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # OPTIONS gets the JSON 405 with Allow, like any method
    # No redirects: werkzeug would build their Location from the client's Host header.
    app.url_map.merge_slashes = False

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = secrets.token_hex(16)

    @app.after_request
    def security_headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    openapi.init_app(app, secured=bool(app.extensions["allies.tokens"]), rate_limited=limit is not None)
    errors.init_app(app)
    accesslog.init_app(app, settings.log_file, echo=echo_log, clock=clock)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.health_bp)
    return app
