"""Sign-in and sign-out pages."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from crisis_console.auth import bp, throttle
from crisis_console.auth.loaders import share_links
from crisis_console.auth.roles import signed_in
from crisis_console.extensions import accounts, store
from crisis_console.roles import HOME_ENDPOINT
from crisis_console.services import audit
from crisis_console.services.accounts import MIN_PASSWORD, User
from crisis_console.services.errors import ValidationError
from crisis_console.sockets import realtime


def home_url(user: User) -> str:
    """Return the URL of the user's role page."""
    return url_for(HOME_ENDPOINT[user.role])


def safe_next(target: str | None) -> str | None:
    """Return ``target`` when it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def sign_in(user: User) -> None:
    """Start a server-side session for ``user``, set the cookie, and record it."""
    login_user(accounts().start_session(user))
    store().audit.append(audit.entry(user.username, "auth.signed_in", f"user:{user.id}"))


def end_session(user: User) -> None:
    """Sign out: end the server-side session, clear the cookie, close the user's sockets."""
    accounts().end_session(user)
    logout_user()
    realtime.disconnect_user(user.id)


@bp.route("/login", methods=["GET", "POST"])
@throttle.per_ip
@throttle.per_user
def login() -> Response | tuple[str, int] | str:
    """Show the sign-in form, or sign in and go to the page for the user's role."""
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(next_url or home_url(current_user))
        return render_template("auth/login.html", next_url=next_url)
    username = request.form.get("username", "")
    user = accounts().authenticate(username, request.form.get("password", ""))
    if user is None:
        flash("Wrong username or password, or the account is disabled.", "error")
        return render_template("auth/login.html", next_url=next_url, username=username), 401
    sign_in(user)
    return redirect(next_url or home_url(user))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """Sign out, end this user's live connections, and return to the sign-in page."""
    if current_user.is_authenticated:
        user: User = current_user._get_current_object()  # type: ignore[attr-defined]
        store().audit.append(audit.entry(user.username, "auth.signed_out", f"user:{user.id}"))
        end_session(user)
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in
def change_password() -> Response | tuple[str, int]:
    """Show the change-password form, or change one's own password and end the other sessions."""
    if request.method == "GET":
        return render_template("auth/password.html", min_password=MIN_PASSWORD), 200
    user: User = current_user._get_current_object()  # type: ignore[attr-defined]
    form = request.form
    try:
        changed = accounts().change_own_password(
            user,
            form.get("current_password", ""),
            form.get("new_password", ""),
            form.get("confirm_password", ""),
        )
    except ValidationError as exc:
        return render_template("auth/password.html", min_password=MIN_PASSWORD, error=exc), exc.status
    accounts().end_session(user)
    realtime.disconnect_user(user.id)  # other tabs and devices: their sessions ended with the epoch
    logout_user()
    sign_in(changed)
    flash("Your password is changed. Your other sessions are signed out.", "success")
    return redirect(home_url(changed))


@bp.route("/share/<token>")
def open_share_link(token: str) -> Response | tuple[str, int]:
    """Open the read-only dashboard from a manager's share link (no account needed)."""
    viewer = share_links().open(token)
    if viewer is None:
        message = "This share link has expired or was revoked. Ask the emergency manager for a new one."
        return render_template(
            "errors/error.html", status=403, title="Link no longer valid", message=message
        ), 403
    login_user(viewer)
    return redirect(url_for("console.dashboard"))
