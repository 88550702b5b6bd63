"""What the web faces share, built once per app by the factory: the database pool, the key ring,
the tokens, the write limit, the sampler of audited refusals, the settings. Reached through
`services()` (or `services(app)` outside a request): the one place that knows where Flask keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app, g, request
from psycopg_pool import ConnectionPool

from .. import audit, credentials, db, ratelimit
from ..config import Settings
from ..crypto import KeyRing
from ..keyfile import load_keyring

_EXTENSION = "allies"
# Refusals before any work (401, 429) cost an attacker nothing, so they are audited sampled: up to
# this many per client address and minute (the next audited row counts the rest).
REFUSALS_AUDITED_PER_MINUTE = 10


@dataclass
class Services:
    settings: Settings
    pool: ConnectionPool
    keyring: KeyRing
    tokens: dict[str, str]
    limiter: ratelimit.SharedLimiter | None
    refusals: ratelimit.Sampler = field(
        default_factory=lambda: ratelimit.Sampler(ratelimit.Limit(REFUSALS_AUDITED_PER_MINUTE, 60))
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """The pool is opened without waiting for the database (a request then answers 503 until
        it is back); the key ring must be readable."""
        keyring = load_keyring(settings)  # first: a ring that cannot be read leaves no pool open
        pool = db.create_pool(settings.database_url, timeout=settings.db_timeout_seconds)
        limit = settings.write_rate_limit
        return cls(
            settings=settings,
            pool=pool,
            keyring=keyring,
            tokens=settings.api_tokens,
            limiter=ratelimit.SharedLimiter(limit, pool) if limit else None,
        )

    def write_path(self, attempt: audit.Attempt) -> credentials.CredentialsWrite:
        """The one write path, as configured here, for one attempt (the API's or the console's)."""
        return credentials.CredentialsWrite(
            self.pool,
            self.keyring,
            attempt,
            limiter=self.limiter,
            refusals=self.refusals,
            keep=self.settings.credential_versions,
            require_precondition=self.settings.require_if_match,
        )

    def close(self) -> None:
        self.pool.close()


def init_app(app: Flask, settings: Settings) -> Services:
    app.extensions[_EXTENSION] = Services.from_settings(settings)
    return app.extensions[_EXTENSION]


def services(app: Flask | None = None) -> Services:
    """The services of `app`, by default the app of the current request."""
    return (app or current_app).extensions[_EXTENSION]


def credentials_write(actor: str, ally_id: str) -> credentials.CredentialsWrite:
    """The one write path for this request's attempt on `ally_id` (the API's or the console's)."""
    return services().write_path(audit.Attempt(actor, ally_id, request.remote_addr, g.request_id))
