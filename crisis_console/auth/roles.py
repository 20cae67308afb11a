"""The role check for pages and API routes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import request
from flask_login import current_user
from werkzeug.exceptions import Forbidden

from crisis_console.auth.loaders import protect_cookie_write
from crisis_console.extensions import login_manager
from crisis_console.roles import ROLES, VIEWER

F = TypeVar("F", bound=Callable[..., Any])


def roles_required(*roles: str) -> Callable[[F], F]:
    """Let only signed-in users holding one of ``roles`` (any role when none given) through."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if roles and current_user.role not in roles:
                raise Forbidden(f"This needs the {' or '.join(roles)} role.")
            # Only now the CSRF token: who is asking, and whether they may, is answered first.
            protect_cookie_write()
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]  # read by the route audit test
        wrapped.checks_csrf_after_roles = True  # type: ignore[attr-defined]  # read by check_csrf
        return wrapped  # type: ignore[return-value]

    return decorate


def signed_in(view: F) -> F:
    """Let any signed-in user through (not share-link viewers, who see only the dashboard)."""
    return roles_required(*ROLES)(view)


def dashboard_readers(view: F | None = None, /, **viewer_args: str) -> Any:
    """Let signed-in users and share-link viewers through: only for what the dashboard reads.

    A viewer may read exactly what the dashboard page loads (tests/test_roles.py holds the
    list), so this goes only on those routes. ``viewer_args`` are query arguments a viewer
    must send as the dashboard does, e.g. ``status="active"`` to list the active events only.
    Used bare (``@dashboard_readers``) or called (``@dashboard_readers(status="active")``).
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def only_what_the_dashboard_shows(*args: Any, **kwargs: Any) -> Any:
            if current_user.role == VIEWER and any(
                request.args.get(name) != value for name, value in viewer_args.items()
            ):
                wanted = "&".join(f"{name}={value}" for name, value in viewer_args.items())
                raise Forbidden(f"A shared dashboard reads only {request.path}?{wanted}.")
            return view(*args, **kwargs)

        return roles_required(*ROLES, VIEWER)(only_what_the_dashboard_shows)  # type: ignore[arg-type]

    return decorate(view) if view is not None else decorate
