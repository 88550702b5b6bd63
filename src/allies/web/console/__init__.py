"""The support console: the team's web pages under /console, a fourth face beside the API, the CLI
and the runbook. It calls the same domain functions (stores, credentials, reports, triage) and
runs the same SQL; nothing here is a second implementation.

`views` holds the pages, `guard` who may use them (tokens, session, CSRF, headers), `charts` the
server-side SVG, `i18n` English and Spanish."""

from __future__ import annotations

from datetime import UTC

from flask import Flask

from ...validation import is_valid_ally_id
from . import guard, i18n, views


def init_app(app: Flask) -> None:
    guard.init_app(app)
    i18n.init_app(app)
    app.jinja_env.globals["utc"] = UTC
    app.jinja_env.tests["valid_ally_id"] = is_valid_ally_id  # only those get a link to their page
    app.register_blueprint(views.bp)
