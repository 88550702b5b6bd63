"""The console's pages. Each view reads the form, calls the domain function the CLI and the API
call, and renders a template; failures are exceptions, rendered as an error page by the handlers
at the end."""

from __future__ import annotations

import gzip
import json
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import psycopg
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from ... import audit, credentials, reports, stores, triage
from ...ratelimit import WriteLimited
from ...triage import remediation
from ...validation import MAX_VERSION, AllyNotFound, Rejected, canonical_ally_id, parse_ally_id
from .. import errors
from ..services import credentials_write, services
from . import charts, guard, i18n

bp = Blueprint(
    "console", __name__, url_prefix="/console", template_folder="templates", static_folder="static"
)

RECENT_EVENTS = 12
UPLOAD_BYTES = 64 * 1024 * 1024  # an uploaded log file, as sent (a gzip file counts compressed)
FORM_BYTES = 64 * 1024  # the rest of the upload's request: the multipart framing and the other fields
UNPACKED_BYTES = 1024 * 1024 * 1024  # ...and once decompressed: a small gzip can unpack to far more
TIMELINE_COLUMNS = 48
PLANS_SHOWN = 20
SIGN_IN_ENDPOINTS = {"console.sign_in", "console.static"}


@bp.before_request
def admit() -> None:
    """Who is visiting; a visitor not signed in is sent to sign in; every POST proves its form."""
    g.lang = i18n.choose_language()
    guard.identify_visitor()
    if g.actor is None and request.endpoint not in SIGN_IN_ENDPOINTS:
        if request.method != "GET":
            abort(401)
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        if request.endpoint == "console.log_triage":
            request.max_content_length = UPLOAD_BYTES + FORM_BYTES  # the file itself: checked in _unpacked
        guard.check_csrf()
    return None


@bp.after_request
def finish(response):
    i18n.remember_language(response)
    return guard.secure_headers(response)


@bp.app_context_processor
def page_helpers() -> dict:
    return {"csrf_token": guard.csrf_token, "actor": g.get("actor"), "lang": g.get("lang", "en"),
            "languages": i18n.LANGUAGES, "tag_names": stores.TAG_NAMES}  # fmt: skip


# -- sign in -----------------------------------------------------------------------------------


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    target = _local_target(request.values.get("next", ""))
    if g.actor is not None:
        return redirect(target)
    if request.method == "GET":
        return render_template("console/sign_in.html", next=target)
    _check_write_limit()  # as for the API's writes, before the token is checked: guessing is limited too
    if guard.sign_in(request.form.get("token", "")) is None:
        current_app.logger.warning("console sign-in refused for %s", request.remote_addr)
        return render_template("console/sign_in.html", next=target, refused=True), 401
    return redirect(target)


@bp.post("/sign-out")
def sign_out():
    guard.sign_out()
    return redirect(url_for("console.sign_in"))


def _local_target(target: str) -> str:
    """Where to go after signing in: a console page of this site, never elsewhere."""
    parts = urlsplit(target)
    unsafe = "\\" in target or any(
        ord(char) < 0x20 or ord(char) == 0x7F for char in target
    )  # CR LF: a header
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/") or unsafe:
        return url_for("console.overview")
    return target


# -- overview ----------------------------------------------------------------------------------


@bp.get("/", strict_slashes=False)  # /console too, without a redirect: its Location would come from Host
def overview():
    database_ok, counts, tags, events = True, None, [], []
    try:
        with _pool().connection() as conn:
            counts = reports.store_counts(conn)
            tags = reports.tag_distribution(conn)
            events = _recent_events(conn)
    except psycopg.OperationalError:
        database_ok = False
    chart = charts.horizontal_bars([(r["tag"], r["stores"]) for r in tags], i18n.gettext("Stores per tag"))
    return render_template(
        "console/overview.html", database_ok=database_ok, counts=counts, tags=tags, chart=chart, events=events
    )


def _recent_events(conn, ally_id: str | None = None) -> list[dict]:
    """Credential attempts and store changes, newest first."""
    events = [
        {"at": row["at"], "actor": row["actor"], "ally_id": row["ally_id"], "kind": row["action"],
         "outcome": row["outcome"], "detail": row["detail"] or ""}
        for row in audit.attempts(conn, ally_id, limit=RECENT_EVENTS)
    ] + [
        {"at": row["changed_at"], "actor": row["actor"], "ally_id": row["store_id"], "kind": "store.change",
         "outcome": "success", "detail": row["reason"]}
        for row in stores.changes(conn, ally_id, limit=RECENT_EVENTS)
    ]  # fmt: skip
    return sorted(events, key=lambda event: event["at"], reverse=True)[:RECENT_EVENTS]


# -- allies ------------------------------------------------------------------------------------


@bp.get("/allies")
def search():
    text = request.args.get("q", "")
    with _pool().connection() as conn:
        found = stores.search(conn, text)
    if len(found) == 1 and found[0]["id"] == canonical_ally_id(text.strip()):
        return redirect(url_for("console.ally", ally_id=found[0]["id"]))
    return render_template("console/search.html", text=text, found=found)


@bp.get("/allies/<ally_id>")
def ally(ally_id: str):
    ally_id = parse_ally_id(ally_id)
    with _pool().connection() as conn:
        store = _store(conn, ally_id)
        events = _recent_events(conn, ally_id)
        journal = stores.changes(conn, ally_id)
        history = credentials.versions(conn, ally_id)
    return render_template(
        "console/ally.html", ally_id=ally_id, store=store, events=events, journal=journal, history=history
    )


def _store(conn, ally_id: str) -> dict:
    data = stores.get_store(conn, ally_id)
    if data is None:
        raise AllyNotFound.of(ally_id)
    return stores.public_view(data)


# -- case 2: the store fix, with a preview and an undo -----------------------------------------


@bp.route("/allies/<ally_id>/fix", methods=["GET", "POST"])
def fix(ally_id: str):
    ally_id = parse_ally_id(ally_id)
    if request.method == "GET":
        with _pool().connection() as conn:
            store = _store(conn, ally_id)
        return render_template("console/fix.html", ally_id=ally_id, store=store, form={})
    form = {key: request.form.get(key, "").strip() for key in ("owner", "old_tag", "new_tag", "reason")}
    change = _change(form)
    reason = form["reason"] or f"console: {change.describe()}"
    confirmed = request.form.get("step") == "apply"
    _check_write_limit()
    with _pool().connection() as conn:
        outcome = stores.apply_change(
            conn,
            ally_id,
            change,
            reason=reason[: stores.MAX_REASON_CHARS],
            dry_run=not confirmed,
            actor=g.actor,
            expect=_previewed(change) if confirmed else None,
        )
        store = outcome.after if confirmed else _store(conn, ally_id)
    if confirmed:
        return render_template("console/fixed.html", ally_id=ally_id, store=store, form=form, outcome=outcome)
    seen = json.dumps({key: outcome.before.get(key) for key in change.touched_keys()})
    return render_template(
        "console/fix.html", ally_id=ally_id, store=store, form=form, outcome=outcome, seen=seen
    )


def _previewed(change: stores.Change) -> dict | None:
    """The touched fields as the preview showed them (the form's `seen`): the apply writes only
    over those. A form without it (a script's) asks nothing."""
    raw = request.form.get("seen", "")
    if not raw:
        return None
    try:
        seen = json.loads(raw)
    except ValueError:
        seen = None
    if not isinstance(seen, dict) or not set(seen) <= set(change.touched_keys()):
        raise Rejected("the preview this form came from is malformed: preview the change again")
    return seen


def _change(form: dict) -> stores.Change:
    old, new = form["old_tag"], form["new_tag"]
    if bool(old) != bool(new):
        raise Rejected("to replace a tag, choose both the tag to replace and its replacement")
    change = stores.Change(owner=form["owner"] or None, replace_tags=((old, new),) if old else ())
    if not change.touched_keys():
        raise Rejected("nothing to change: give a new owner or a tag to replace")
    return change


@bp.post("/allies/<ally_id>/undo")
def undo(ally_id: str):
    ally_id = parse_ally_id(ally_id)
    change = request.form.get("change", "")
    _check_write_limit()
    with _pool().connection() as conn:  # the change the page showed, and only while it is the latest
        outcome = stores.undo_last_change(
            conn, ally_id, actor=g.actor, change_id=int(change) if change.isdigit() else None
        )
    return render_template(
        "console/fixed.html", ally_id=ally_id, store=outcome.after, outcome=outcome, undone=True
    )


# -- case 3: credentials, through the one write path; their versions, and a restore -----------


@bp.route("/allies/<ally_id>/credentials", methods=["GET", "POST"])
def set_credentials(ally_id: str):
    ally_id = parse_ally_id(ally_id)
    with _pool().connection() as conn:
        store = _store(conn, ally_id)
    if request.method == "GET":
        return render_template("console/credentials.html", ally_id=ally_id, store=store)
    username = request.form.get("username", "")
    write = _credentials_write(ally_id)
    body = {"username": username, "password": request.form.get("password", "")}
    try:
        write.run(lambda: credentials.Asked(body, _loaded_version()))
    except Rejected as exc:
        return render_template("console/credentials.html", ally_id=ally_id, store=store, username=username,
                               problem=exc.detail), 400  # fmt: skip
    return redirect(url_for("console.ally", ally_id=ally_id, saved="credentials"), code=303)


@bp.post("/allies/<ally_id>/credentials/restore")
def restore_credentials(ally_id: str):
    """A preview of the restore (what it changes), then the restore itself, as of the version the
    page was loaded with: a change made meanwhile shows the conflict page instead."""
    ally_id = parse_ally_id(ally_id)
    version = request.form.get("version", "")
    with _pool().connection() as conn:
        store = _store(conn, ally_id)
        history = {row["version"]: row for row in credentials.versions(conn, ally_id)}
    chosen = history.get(int(version)) if version.isdigit() else None
    if chosen is None or chosen["destroyed"]:
        raise Rejected(f"ally {ally_id} has no kept credentials version {version[:20]!r} to restore")
    if request.form.get("step") != "apply":
        current = history.get(store["credentials"]["version"])
        return render_template(
            "console/restore.html", ally_id=ally_id, store=store, chosen=chosen, current=current
        )
    write = _credentials_write(ally_id)
    write.restore(lambda: credentials.Asked({"version": chosen["version"]}, _loaded_version()))
    return redirect(url_for("console.ally", ally_id=ally_id, saved="restored"), code=303)


def _credentials_write(ally_id: str) -> credentials.CredentialsWrite:
    write = credentials_write(g.actor, ally_id)
    write.admit(authenticated=True)  # the console has signed its visitor in
    return write


def _loaded_version() -> credentials.Precondition:
    """The version of the credentials the form was loaded with (`none`: it had none): the write
    happens only if it is still the current one. A form without it (a script's) asks nothing."""
    loaded = request.form.get("loaded_version", "")
    if loaded == "none":
        return credentials.Precondition(absent=True)
    if loaded.isdigit() and 0 < int(loaded) <= MAX_VERSION:
        return credentials.Precondition(match=(int(loaded),))
    if loaded:
        raise Rejected("the form's loaded_version is malformed: reload the page")
    return credentials.NO_PRECONDITION


# -- case 4: log triage ------------------------------------------------------------------------


@bp.route("/triage", methods=["GET", "POST"])
def log_triage():
    server_log = services().settings.log_file
    if request.method == "GET":
        return render_template("console/triage.html", server_log=server_log)
    with tempfile.TemporaryDirectory(prefix="allies-triage-") as folder:
        if request.form.get("source") == "server":
            path, name = server_log, str(server_log)
        else:
            upload = request.files.get("log")
            if upload is None or not upload.filename:
                raise Rejected("choose a log file to upload, or analyse the server's own log")
            path, name = _unpacked(upload.stream, Path(folder) / "upload.log"), upload.filename
        try:
            report = triage.analyze([str(path)], timeline=True)
        except triage.TriageError as exc:
            raise Rejected(str(exc).replace(str(path), name)) from None
    return render_template("console/triage_report.html", name=name, **_triage_view(report))


def _unpacked(stream: IO[bytes], target: Path) -> Path:
    """The upload as a plain file (gunzipped when it is gzip), at most UPLOAD_BYTES as sent and
    UNPACKED_BYTES once decompressed."""
    if stream.seek(0, 2) > UPLOAD_BYTES:
        raise RequestEntityTooLarge()
    stream.seek(0)
    head = stream.read(2)
    stream.seek(0)
    source = gzip.GzipFile(fileobj=stream) if head == b"\x1f\x8b" else stream
    try:
        with target.open("wb") as out:
            while chunk := source.read(1024 * 1024):
                if out.tell() + len(chunk) > UNPACKED_BYTES:
                    raise Rejected(f"the log is over {UNPACKED_BYTES // 2**20} MiB once decompressed")
                out.write(chunk)
    except (OSError, EOFError, zlib.error):
        raise Rejected("the upload is not a readable gzip file") from None
    return target


def _triage_view(report: triage.Report) -> dict:
    affected = report.affected()
    with _pool().connection() as conn:
        records = remediation.lookup(conn, [stats.ally_id for stats in affected])
    width, buckets = report.timeline.regrouped(TIMELINE_COLUMNS)
    statuses = sorted({status for _, counts in buckets for status in counts})
    colours = charts.status_colours(statuses)
    columns = [(_time_label(start, width), counts) for start, counts in buckets]
    api_url = request.host_url.rstrip("/")
    still_affected = report.still_affected()
    shown = still_affected[:PLANS_SHOWN]
    plans = {s.ally_id: remediation.plan(s, records.get(s.ally_id), api_url) for s in shown}
    return {
        "report": report,
        "affected": affected,
        "records": records,
        "still_affected": len(still_affected),
        "plans": plans,
        "bucket_minutes": width // 60,
        "columns": columns,
        "colours": colours,
        "chart": charts.stacked_columns(
            columns, colours, i18n.gettext("Failed requests over time, by status")
        ),
    }


def _time_label(start: int, width: int) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    return f"{moment:%Y-%m-%d}" if width >= 86400 else f"{moment:%m-%d %H:%M}"


# -- shared --------------------------------------------------------------------------------------


def _pool():
    return services().pool


def _check_write_limit() -> None:
    """The API's write limit, for the console's writes (and sign-in attempts: guessing is limited)."""
    limiter = services().limiter
    if limiter is not None:
        limiter.check(request.remote_addr or "-")


@bp.route("/<path:unknown>", methods=["GET", "POST"])
def page_not_found(unknown: str):
    """A path under /console/ that no page has: the console's 404 page (every other path keeps the
    API's JSON 404)."""
    raise NotFound()


@bp.errorhandler(Rejected)
def rejected(exc: Rejected):
    status = 404 if isinstance(exc, AllyNotFound) else exc.status
    return render_template("console/error.html", status=status, detail=exc.detail), status


@bp.errorhandler(stores.StoreChanged)
def store_changed(exc: stores.StoreChanged):
    return render_template("console/error.html", status=409, detail=str(exc)), 409


@bp.errorhandler(credentials.Conflict)
def conflict(exc: credentials.Conflict):
    """Someone changed the credentials since this page was loaded: nothing was written."""
    ally_id = parse_ally_id(request.view_args.get("ally_id", ""))
    with _pool().connection() as conn:
        latest = next(iter(credentials.versions(conn, ally_id)), None)
    return render_template("console/conflict.html", ally_id=ally_id, latest=latest), 409


@bp.errorhandler(WriteLimited)
def write_limited(exc: WriteLimited):
    page = render_template("console/error.html", status=429, retry_after=exc.retry_after)
    return page, 429, {"Retry-After": exc.retry_after}


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    status, retry_after = exc.code or 500, getattr(exc, "retry_after", None)
    page = render_template(
        "console/error.html", status=status, kind=getattr(exc, "kind", None), retry_after=retry_after
    )
    return page, status, {"Retry-After": str(retry_after)} if retry_after else {}


@bp.errorhandler(psycopg.OperationalError)
def database_unavailable(exc: psycopg.OperationalError):
    current_app.logger.warning(
        "database unavailable (%s) in console request %s", type(exc).__name__, g.request_id
    )
    page = render_template("console/error.html", status=503, kind="database")
    return page, 503, {"Retry-After": str(errors.RETRY_AFTER_SECONDS)}


@bp.errorhandler(Exception)
def unexpected(exc: Exception):
    current_app.logger.error("unhandled %s in console request %s", type(exc).__name__, g.request_id)
    return render_template("console/error.html", status=500), 500
