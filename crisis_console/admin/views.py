"""The admin users page: list, add, disable, reset password, set role and team, tokens."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from crisis_console.admin import bp
from crisis_console.auth.roles import roles_required
from crisis_console.extensions import accounts, store
from crisis_console.roles import ROLES, Role
from crisis_console.services.accounts import API_SCOPE, MIN_PASSWORD, OPEN311_SCOPE, User
from crisis_console.services.errors import ServiceError
from crisis_console.services.lines import ROUTE_TYPES, SAY_LANGUAGES, Lines
from crisis_console.sockets import realtime
from scripts_library import languages


def render_users(status: int = 200, **context: object) -> tuple[str, int]:
    """Render the users page with the current list."""
    service = accounts()
    users = service.all()
    tokens = {u.id: service.tokens(u.id) for u in users}
    return (
        render_template(
            "admin/users.html",
            users=users,
            tokens=tokens,
            roles=ROLES,
            min_password=MIN_PASSWORD,
            languages=lambda current: languages.choices({current}),
            form=context.pop("form", {}),
            **context,
        ),
        status,
    )


def announce(user: User, message: str) -> Response:
    """Tell other admin pages, flash a confirmation and go back to the list."""
    realtime.user_changed(user.public())
    flash(message, "success")
    return redirect(url_for("admin.users"))


@bp.route("/users")
@roles_required(Role.ADMIN)
def users() -> tuple[str, int]:
    """List every user, with forms to add and change them."""
    return render_users()


@bp.route("/users", methods=["POST"])
@roles_required(Role.ADMIN)
def add_user() -> Response | tuple[str, int]:
    """Create a user from the add form."""
    form = request.form
    try:
        user = accounts().create_from(form, actor=current_user.username)
    except ServiceError as exc:
        return render_users(
            exc.status,
            form={k: v for k, v in form.items() if k != "password"},
            form_error=exc,
        )
    return announce(user, f"Created {user.role} {user.username!r}.")


def _change(user_id: int, action: str) -> Response:
    """Apply one admin action to a user; errors are flashed, never lost silently."""
    service = accounts()
    actor = current_user.username
    form = request.form
    try:
        if action == "disable":
            user = service.set_active(user_id, False, actor=actor)
            realtime.disconnect_user(user.id)
            message = f"Disabled {user.username!r}: their sessions, tokens and live connections stopped."
        elif action == "enable":
            user = service.set_active(user_id, True, actor=actor)
            message = f"Enabled {user.username!r}."
        elif action == "password":
            user = service.reset_password(user_id, form.get("password"), actor=actor)
            realtime.disconnect_user(user.id)
            message = f"New password set for {user.username!r}; their old sessions ended."
        else:
            before = service.require(user_id)
            user = service.set_role_and_team(user_id, form.get("role"), form.get("team"), actor=actor)
            if "phone" in form or "email" in form:
                user = service.set_contact(user_id, form.get("phone"), form.get("email"), actor=actor)
            if form.get("language", before.language) != before.language:
                user = service.set_language(user_id, form.get("language"), actor=actor)
            if user.role != before.role:
                realtime.disconnect_user(user.id)
            message = f"Saved role, team and alert contacts of {user.username!r}."
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.users"))
    return announce(user, message)


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
@roles_required(Role.ADMIN)
def disable_user(user_id: int) -> Response:
    """Disable a user at once: sessions, tokens and sockets stop working."""
    return _change(user_id, "disable")


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
@roles_required(Role.ADMIN)
def enable_user(user_id: int) -> Response:
    """Enable a disabled user."""
    return _change(user_id, "enable")


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@roles_required(Role.ADMIN)
def reset_password(user_id: int) -> Response:
    """Set a new password for a user."""
    return _change(user_id, "password")


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@roles_required(Role.ADMIN)
def set_role(user_id: int) -> Response:
    """Change a user's role and team."""
    return _change(user_id, "role")


@bp.route("/users/<int:user_id>/tokens", methods=["POST"])
@roles_required(Role.ADMIN)
def create_token(user_id: int) -> Response | tuple[str, int]:
    """Create an API token, or an Open311 key (``scope=open311``), and show it once (stored hashed)."""
    service = accounts()
    try:
        user = service.require(user_id)
        scope = request.form.get("scope") or API_SCOPE
        token = service.create_token(
            user.username, request.form.get("name", ""), actor=current_user.username, scope=scope
        )
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.users"))
    return render_users(new_token=token, new_token_user=user, new_token_open311=scope == OPEN311_SCOPE)


@bp.route("/users/<int:user_id>/tokens/<token_id>/revoke", methods=["POST"])
@roles_required(Role.ADMIN)
def revoke_token(user_id: int, token_id: str) -> Response:
    """Revoke one API token."""
    try:
        accounts().revoke_token(user_id, token_id, actor=current_user.username)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.users"))
    flash("Token revoked.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/lines")
@roles_required(Role.ADMIN)
def lines() -> str:
    """List the phone lines and add one."""
    service = Lines(store())
    lines = service.list()
    return render_template(
        "admin/lines.html",
        lines=lines,
        busy=service.busy(lines),
        languages=list(SAY_LANGUAGES),
        route_types=ROUTE_TYPES,
    )


@bp.route("/categories")
@roles_required(Role.ADMIN, Role.MANAGER)
def categories() -> str:
    """List the category catalogue with recent counts; add, edit, retire, restore and merge."""
    from crisis_console.services import trends
    from crisis_console.services.categories import ACTIVE, MERGED, RETIRED, Categories
    from scripts_library.templates import HAZARDS

    everything = Categories(store()).list(include_inactive=True)
    day = trends.series(store(), window="24h", bucket="24h")["totals"]
    week = trends.series(store(), window="7d", bucket="7d")["totals"]
    by_status = {s: [c for c in everything if c.status == s] for s in (ACTIVE, RETIRED, MERGED)}
    by_status[ACTIVE].sort(key=lambda c: c.name.lower())
    return render_template(
        "admin/categories.html",
        active=by_status[ACTIVE],
        retired=by_status[RETIRED],
        merged=by_status[MERGED],
        names={c.code: c.name for c in everything},
        day=day,
        week=week,
        hazards=HAZARDS,
    )


@bp.route("/categories/merge", methods=["POST"])
@roles_required(Role.ADMIN, Role.MANAGER)
def merge_categories() -> Response:
    """Merge the category chosen in the form into the one to keep."""
    from crisis_console.services.categories import Categories

    source = request.form.get("source", "")
    try:
        if not source:
            raise ServiceError("Choose the category to merge away.", field="source")
        service = Categories(store())
        away = service.require(source)
        kept = service.merge(source, {"into": request.form.get("into", "")}, actor=current_user.username)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.categories"))
    flash(
        f"Merged {away.name!r} into {kept.name!r}: its names and its counts, history included, "
        f"now count under {kept.name!r}.",
        "success",
    )
    return redirect(url_for("admin.categories"))
