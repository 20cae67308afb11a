"""API routes for sessions, the signed-in user, users and the audit trail."""

from __future__ import annotations

import re
from typing import Any

from flask import jsonify, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from crisis_console import clock
from crisis_console.api import bp
from crisis_console.api.body import json_object, required_text
from crisis_console.auth import throttle
from crisis_console.auth.loaders import share_links
from crisis_console.auth.roles import roles_required, signed_in
from crisis_console.auth.views import end_session, sign_in
from crisis_console.extensions import accounts, store
from crisis_console.roles import ROLES, Role
from crisis_console.services import audit
from crisis_console.services.errors import ServiceError, ValidationError
from crisis_console.sockets import realtime

MAX_AUDIT_PAGE = 1000
AUDIT_ID_RE = re.compile(r"^\d{10,}-\d+$")


@bp.route("/session", methods=["POST"])
@throttle.per_ip
@throttle.per_user
def create_session() -> Any:
    """Sign in with ``{username, password}``: a session cookie and a CSRF token for writes."""
    data = json_object()
    username = required_text(data, "username")
    password = required_text(data, "password")
    user = accounts().authenticate(username, password)
    if user is None:
        raise AuthFailed("Wrong username or password, or the account is disabled.", field="password")
    sign_in(user)
    return jsonify({"user": user.public(), "csrf_token": generate_csrf()}), 201


@bp.route("/session", methods=["DELETE"])
@signed_in
def delete_session() -> Any:
    """Sign out this session and close the user's live connections."""
    user = current_user._get_current_object()  # the proxy turns anonymous at logout
    store().audit.append(audit.entry(user.username, "auth.signed_out", f"user:{user.id}"))
    end_session(user)
    return "", 204


@bp.route("/me")
@signed_in
def me() -> Any:
    """Return the signed-in user."""
    return jsonify({"user": current_user.public()})


@bp.route("/me", methods=["PATCH"])
@roles_required(*ROLES)  # a share link's viewer has no account to change
def update_me() -> Any:
    """Change the signed-in user's own ``language`` (the one they read scripts in first)."""
    data = json_object()
    unknown = sorted(set(data) - {"language"})
    if unknown:
        raise ValidationError(f"Unknown field {unknown[0]!r}.", field=unknown[0])
    if "language" not in data:
        raise ValidationError("language is required.", field="language")
    user = accounts().set_language(current_user.id, data["language"], actor=current_user.username)
    return jsonify({"user": user.public()})


@bp.route("/users")
@roles_required(Role.ADMIN)
def list_users() -> Any:
    """List every user."""
    return jsonify({"users": [user.public() for user in accounts().all()]})


@bp.route("/users", methods=["POST"])
@roles_required(Role.ADMIN)
def create_user() -> Any:
    """Create a user ``{username, role, password, team?, display_name?}``."""
    user = accounts().create_from(json_object(), actor=current_user.username)
    realtime.user_changed(user.public())
    return jsonify({"user": user.public()}), 201


@bp.route("/users/<int:user_id>", methods=["PATCH"])
@roles_required(Role.ADMIN)
def update_user(user_id: int) -> Any:
    """Change ``role``, ``team``, ``active``, ``password``, ``phone``, ``email`` or ``language``."""
    data = json_object()
    unknown = sorted(set(data) - {"role", "team", "active", "password", "phone", "email", "language"})
    if unknown:
        raise ValidationError(f"Unknown field {unknown[0]!r}.", field=unknown[0])
    service = accounts()
    actor = current_user.username
    user = service.require(user_id)
    end_connections = False
    if "role" in data or "team" in data:
        changed = service.set_role_and_team(
            user_id, data.get("role", user.role), data.get("team", user.team), actor=actor
        )
        end_connections |= changed.role != user.role
    if "phone" in data or "email" in data:
        service.set_contact(
            user_id, data.get("phone", user.phone), data.get("email", user.email), actor=actor
        )
    if "language" in data:
        service.set_language(user_id, data["language"], actor=actor)
    if "password" in data:
        service.reset_password(user_id, data["password"], actor=actor)
        end_connections = True
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise ValidationError("active must be true or false.", field="active")
        service.set_active(user_id, data["active"], actor=actor)
        end_connections |= not data["active"]
    if end_connections:
        realtime.disconnect_user(user_id)
    updated = service.require(user_id)
    realtime.user_changed(updated.public())
    return jsonify({"user": updated.public()})


@bp.route("/audit")
@roles_required(Role.MANAGER, Role.ADMIN)
def audit_trail() -> Any:
    """Return audit entries oldest first: ``since`` (ISO time or entry id, exclusive), ``limit``."""
    since = request.args.get("since", "").strip()
    start = "-"
    if since:
        if AUDIT_ID_RE.match(since):
            start = since  # an entry id: continue after it
        else:
            try:
                # Entry ids are milliseconds since 1970: a time before then starts at the first.
                start = str(max(0, int(clock.parse_iso(since).timestamp() * 1000)))
            except ValueError:
                raise ValidationError(
                    "since must be an ISO 8601 time or an audit entry id.", field="since"
                ) from None
    limit_text = request.args.get("limit", str(MAX_AUDIT_PAGE))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_AUDIT_PAGE:
        raise ValidationError(f"limit must be a whole number from 1 to {MAX_AUDIT_PAGE}.", field="limit")
    entries = store().audit.read(start, int(limit_text))
    return jsonify({"entries": entries, "next_since": entries[-1]["id"] if entries else since or None})


@bp.route("/share-links", methods=["POST"])
@roles_required(Role.MANAGER)
def create_share_link() -> Any:
    """Make a read-only dashboard link ``{expires_in: seconds, label?}`` → ``{url, …}``."""
    link = share_links().create(json_object(), actor=current_user.username)
    token = link.pop("token")
    return jsonify({**link, "url": url_for("auth.open_share_link", token=token, _external=True)}), 201


@bp.route("/share-links")
@roles_required(Role.MANAGER)
def list_share_links() -> Any:
    """List the live share links (never their URLs: those were shown once)."""
    return jsonify({"share_links": share_links().live()})


@bp.route("/share-links/<link_id>", methods=["DELETE"])
@roles_required(Role.MANAGER)
def revoke_share_link(link_id: str) -> Any:
    """Revoke a share link: its viewers lose the dashboard at once."""
    share_links().revoke(link_id, actor=current_user.username)
    realtime.disconnect_user(f"share:{link_id}")
    return "", 204


class AuthFailed(ServiceError):
    """Wrong credentials (401)."""

    status = 401
    default_code = "unauthorized"
