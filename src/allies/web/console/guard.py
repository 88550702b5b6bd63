"""Who may use the console, and what every console response carries.

- With tokens configured (ALLIES_API_TOKENS), a person signs in once with their token; the console
  keeps a signed, HttpOnly, SameSite=Strict cookie naming them, which ends when their token
  changes (the cookie holds a seal of the token, never the token), when they sign out anywhere
  (the database keeps a generation per person: `allies.sessions`), or after SESSION_HOURS.
- Without tokens the console answers only a browser on this machine: a loopback client that asked
  for a loopback host name (a page elsewhere cannot reach it by pointing its own domain here:
  DNS rebinding).
- Every form carries a CSRF token tied to the session; a POST without it changes nothing.
- Every response forbids scripts, framing and outside resources (Content-Security-Policy).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, Forbidden

from ... import auth, sessions
from ..services import services

SESSION_HOURS = 8
SESSION_PURPOSE = b"console-session"  # the signing key is derived from the key ring (crypto.derive)
CSRF_FIELD = "csrf_token"
# No script at all, no inline style, nothing from elsewhere, never in a frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class CsrfRefused(BadRequest):
    """A POST without its form's CSRF token."""

    kind = "csrf"  # the error page's explanation


class NotThisMachine(Forbidden):
    """Without tokens, a visitor that is not a browser on this machine."""

    kind = "loopback"


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session for the console's pages, marked Secure when the request came
    over HTTPS. The API has no session: its requests neither read the cookie nor build a signer."""

    def open_session(self, app: Flask, request):
        if request.path != "/console" and not request.path.startswith("/console/"):
            return None  # Flask then gives the request a null session
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def init_app(app: Flask) -> None:
    # One key for every worker and replica: they share the key ring, so they derive the same one.
    app.secret_key = services(app).keyring.derive(SESSION_PURPOSE)
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME="allies_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )


def identify_visitor() -> None:
    """Set g.actor: the signed-in person, `local` on this machine without tokens, else None.
    Refuses (403) a visitor from elsewhere when no tokens are configured."""
    tokens = services().tokens
    if not tokens:
        if not (auth.is_loopback(request.remote_addr or "") and auth.is_loopback(_host_name(request.host))):
            raise NotThisMachine()
        g.actor = auth.LOCAL_ACTOR
        return
    name = session.get("actor")
    token = tokens.get(name) if isinstance(name, str) else None
    sealed = token and hmac.compare_digest(session.get("seal", ""), _seal(token))
    g.actor = name if sealed and _still_signed_in(name) else None


def _still_signed_in(name: str) -> bool:
    """The session was opened in the person's current generation: they have not signed out since."""
    with services().pool.connection() as conn:
        return sessions.is_current(conn, name, session.get("generation"))


def sign_in(presented_token: str) -> str | None:
    """The name whose token this is (then the session names them), else None."""
    name = auth.identify(services().tokens, f"Bearer {presented_token}")
    if name is not None:
        with services().pool.connection() as conn:
            current = sessions.generation(conn, name)
        session.clear()
        session.permanent = True
        session.update(actor=name, seal=_seal(services().tokens[name]), generation=current)
    return name


def sign_out() -> None:
    """Ends every session of the person signed in here (other browsers and copied cookies too)."""
    if g.get("actor") and services().tokens:
        with services().pool.connection() as conn:
            sessions.end_all(conn, g.actor)
    session.clear()


def csrf_token() -> str:
    """The session's CSRF token (made on first use), for the hidden field of every form."""
    if not session.get("csrf"):
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    expected, presented = session.get("csrf", ""), request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise CsrfRefused()


def secure_headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _seal(token: str) -> str:
    """Ties a session to the token it was opened with, without holding the token."""
    return hmac.new(current_app.secret_key, token.encode(), hashlib.sha256).hexdigest()[:32]


def _host_name(host: str) -> str:
    """The name of a Host header, without its port: `[::1]:4000` -> `::1`."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
