"""How a request is tied to a user: the session cookie or an API bearer token."""

from __future__ import annotations

from flask import Flask, Request, current_app, g, redirect, request, url_for
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from crisis_console.extensions import accounts, csrf, login_manager, store
from crisis_console.services.accounts import User
from crisis_console.services.share_links import ShareLinks, ShareViewer


def init_app(app: Flask) -> None:
    """Configure Flask-Login and the CSRF hook that exempts bearer requests."""
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_session_user)
    login_manager.request_loader(load_bearer_user)
    login_manager.unauthorized_handler(unauthorized)
    app.before_request(check_csrf)


def bearer_token(req: Request) -> str | None:
    """Return the bearer token of a request, or None when it carries none."""
    auth = req.authorization
    if auth is not None and auth.type == "bearer":
        return auth.token or ""
    return None


def load_session_user(session_id: str) -> User | ShareViewer | None:
    """Load the user of a session cookie (or a share-link viewer); a bearer header wins."""
    if bearer_token(request) is not None:
        return None
    if session_id.startswith("share:"):
        return share_links().viewer(session_id.removeprefix("share:"))
    return accounts().from_session_id(session_id)


def share_links() -> ShareLinks:
    """Return the share-link service of the current app."""
    return ShareLinks(store(), current_app.config["SECRET_KEY"])


def load_bearer_user(req: Request) -> User | None:
    """Load the user of an ``Authorization: Bearer`` token; a bad token is a 401."""
    token = bearer_token(req)
    if token is None:
        return None
    user = accounts().user_for_token(token)
    if user is None:
        raise Unauthorized(
            "The API token is not valid (an Open311 key is only an api_key), or its user is disabled."
        )
    g.authenticated_by_token = True
    return user


#: Methods that change nothing, so need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def check_csrf() -> None:
    """Require the CSRF token on cookie-authenticated writes to routes without a role check.

    Routes behind ``roles_required`` check it themselves, after the sign-in and role checks,
    so an anonymous write answers 401 and a wrong role 403 rather than ``csrf_failed``: a
    test (or a client) can then tell a missing role check from a missing token. What stays
    here are the writes open to everyone, such as the sign-in and sign-out forms.
    """
    if request.method in SAFE_METHODS:
        return
    if request.routing_exception is not None:  # let the 404/405 answer speak
        return
    if request.blueprint in ("twilio", "open311", "cap"):
        # Twilio signs its webhooks; Open311 clients send an api_key (a token), and the CAP
        # inbox takes only bearer tokens: none of them acts on cookies.
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "checks_csrf_after_roles", False):
        return
    protect_cookie_write()


def protect_cookie_write() -> None:
    """Raise ``CSRFError`` for a cookie-authenticated write without a valid CSRF token.

    Bearer requests are exempt: a browser never adds that header by itself, so no other
    site can forge one.
    """
    if request.method in SAFE_METHODS or bearer_token(request) is not None:
        return
    if request.endpoint in EXEMPT_ENDPOINTS:
        return
    csrf.protect()


#: Writes that need no CSRF token: signing in via the API creates the session (there is
#: no session to forge yet), and the form sign-in page carries its own token.
EXEMPT_ENDPOINTS = frozenset({"api.create_session"})


def unauthorized():
    """Send pages to the sign-in page; API clients get a JSON 401."""
    if wants_json():
        raise Unauthorized("Sign in or send an API token.")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def wants_json() -> bool:
    """Return whether this request is answered in JSON (API and machine routes)."""
    if current_app.config.get("ERRORS_AS_JSON"):
        return True
    return request.path.startswith(("/api/", "/open311/", "/cap/", "/twilio/")) or (
        request.accept_mimetypes.best == "application/json"
    )


def signed_in_user() -> User | None:
    """Return the signed-in user, or None."""
    return current_user if current_user.is_authenticated else None  # type: ignore[return-value]
