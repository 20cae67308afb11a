"""The role check for pages and API routes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_login import current_user
from werkzeug.exceptions import Forbidden

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
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # type: ignore[attr-defined]  # read by the route audit test
        return wrapped  # type: ignore[return-value]

    return decorate


def signed_in(view: F) -> F:
    """Let any signed-in user through (not share-link viewers, who see only the dashboard)."""
    return roles_required(*ROLES)(view)


def dashboard_readers(view: F) -> F:
    """Let signed-in users and share-link viewers through: what the dashboard reads."""
    return roles_required(*ROLES, VIEWER)(view)
