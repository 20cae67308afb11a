"""The CAP routes: the public feed and documents, and the token-only inbox."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request, url_for
from flask_login import current_user
from werkzeug.exceptions import NotFound, Unauthorized

from crisis_console import clock
from crisis_console.auth.loaders import bearer_token
from crisis_console.auth.roles import roles_required
from crisis_console.cap import bp
from crisis_console.cap.feed import CAP_MIME, Entry, to_atom
from crisis_console.cap.inbox import MAX_BYTES, CapRejected, parse
from crisis_console.errors import error_body
from crisis_console.extensions import limiter, store
from crisis_console.roles import Role
from crisis_console.services import cap_feed as feeds  # the module: see cap_feed()
from crisis_console.services.cap_inbox import CapInbox

F = TypeVar("F", bound=Callable[..., Any])
ATOM_MIME = "application/atom+xml"


def public(view: F) -> F:
    """Mark a route as open to anyone: county alerting systems poll it without an account."""
    view.allowed_roles = ("public",)  # type: ignore[attr-defined]  # read by the route audit test
    return view


def token_only(*roles: str) -> Callable[[F], F]:
    """Let only API-token requests of ``roles`` through (a browser session is not enough)."""

    def decorate(view: F) -> F:
        checked = roles_required(*roles)(view)

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if bearer_token(request) is None:
                raise Unauthorized("Send an API token: Authorization: Bearer <token>.")
            return checked(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def cap_feed() -> feeds.CapFeed:
    """Return the feed service with this deployment's sender and public page."""
    # ``feeds`` is imported as a module, its names read here: cap_feed imports
    # crisis_console.cap (hazards), whose __init__ imports these views, so a process that
    # imports cap_feed first (the subscribers) would find it half-loaded at import time.
    return feeds.CapFeed(store(), feeds.CapSettings.from_config(current_app.config))


def absolute(endpoint: str, **values: Any) -> str:
    """Return a URL readers can follow: under PUBLIC_BASE_URL when set."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def cap_document(body: bytes, *, immutable: bool) -> Response:
    """Answer a CAP document; a numbered revision never changes, so caches may keep it."""
    response = Response(body, mimetype=CAP_MIME)
    response.headers["Cache-Control"] = "public, max-age=86400" if immutable else "no-cache"
    return response


@bp.route("/alerts.xml")
@public
def alerts_feed() -> Response:
    """Return the Atom index of CAP messages: every revision of active events and live
    announcements, and of those ended within a day (their Cancel included), newest first."""
    entries = [_entry(subject, header) for subject, header in cap_feed().index()]
    feed_url = absolute("cap.alerts_feed")
    body = to_atom(
        feed_id=feed_url,
        title="Crisis Console: CAP alerts",
        self_link=feed_url,
        updated=max((e.updated for e in entries), default=_rfc3339(clock.iso())),
        author=current_app.config.get("CAP_SENDER_NAME") or "311 contact centre",
        entries=entries,
    )
    response = Response(body, mimetype=ATOM_MIME)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _entry(subject: feeds.Subject, header: dict[str, Any]) -> Entry:
    """Return the Atom entry of one published message (headers stored before the CAP fields
    were kept lack some: those are left out)."""
    sent = _rfc3339(header["sent"])
    return Entry(
        identifier=header["identifier"],
        title=header["headline"] or header["event"],
        published=sent,
        updated=sent,
        link=absolute("cap.alert_document", alert_id=f"{subject.slug}-{header['revision']}"),
        summary=f"{header['msg_type']}: {header['event']}, severity {header['severity']}, {header['area_desc']}",
        status=header["status"],
        msg_type=header["msg_type"],
        event=header["event"],
        severity=header["severity"],
        area_desc=header["area_desc"],
        urgency=header.get("urgency", ""),
        certainty=header.get("certainty", ""),
        categories=tuple(header.get("categories") or ()),
        effective=header.get("effective", ""),
        expires=header.get("expires", ""),
        geocodes=tuple((name, value) for name, value in header.get("geocodes") or ()),
    )


@bp.route("/alerts/<alert_id>.xml")
@public
def alert_document(alert_id: str) -> Response:
    """Return one CAP 1.2 document: ``event-12`` is the latest message, ``event-12-3`` revision 3."""
    parsed = feeds.parse_slug(alert_id)
    if parsed is None:
        raise NotFound("Name a CAP message as event-<id>, announcement-<id> or <that>-<revision>.")
    subject, revision = parsed
    feed = cap_feed()
    if revision is not None:
        document = feed.revision(subject, revision)
        if document is None:
            raise NotFound(f"No CAP message {alert_id}.")
        return cap_document(document, immutable=True)
    found = feed.latest(subject)
    if found is None:
        raise NotFound(f"No CAP message about {_describe(subject)}: it was never active.")
    return cap_document(found[1], immutable=False)


@bp.route("/inbox", methods=["POST"])
@limiter.limit("120 per minute")
@token_only(Role.MANAGER, Role.ADMIN)
def inbox() -> Any:
    """Take a CAP 1.1/1.2 alert: 201 with a draft event and its hazard templates, or 200 and why not."""
    if (request.content_length or 0) > MAX_BYTES:
        return _rejected(
            CapRejected(413, "too_large", f"A CAP alert may be at most {MAX_BYTES} bytes.", "body")
        )
    request.max_content_length = MAX_BYTES
    try:
        alert = parse(request.get_data(cache=False))
    except CapRejected as exc:
        return _rejected(exc)
    outcome = CapInbox(store()).receive(alert, username=current_user.username)
    return jsonify(outcome.public()), 201 if outcome.opened else 200


def _rejected(exc: CapRejected) -> tuple[Response, int]:
    return jsonify(error_body(exc.code, exc.message, exc.field)), exc.status


def _rfc3339(cap_sent: str) -> str:
    """Turn CAP's ``…-00:00`` into the ``Z`` Atom readers expect."""
    return clock.iso(clock.parse_iso(cap_sent)).replace(".000Z", "Z")


def _describe(subject: feeds.Subject) -> str:
    return f"{subject.kind} {subject.id}"
