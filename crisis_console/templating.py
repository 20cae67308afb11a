"""What every template can use: the signed-in user, role names, event names, CSRF token, and
the ``localtime`` filters that show times in the console's zone (``CRISIS_TIMEZONE``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_login import current_user
from redis import RedisError

from crisis_console import localtime
from crisis_console.roles import HOME_ENDPOINT, NAMESPACE_ROLES, VIEWER, Role
from crisis_console.sockets import names

#: The Socket.IO namespace each role's pages listen on.
ROLE_NAMESPACE = {
    Role.MANAGER: names.MANAGER,
    Role.AGENT: names.AGENT,
    Role.STAKEHOLDER: names.DASHBOARD,
    Role.ADMIN: names.ADMIN,
    VIEWER: names.DASHBOARD,
}

#: Navigation links per role: (endpoint, label).
NAVIGATION: dict[str, list[tuple[str, str]]] = {
    Role.MANAGER: [
        ("console.manager", "Console"),
        ("console.phone", "Phone line"),
        ("console.alerts_page", "Alerts"),
        ("console.agent", "Agent view"),
        ("console.dashboard", "Dashboard"),
    ],
    Role.AGENT: [("console.agent", "Scripts")],
    Role.STAKEHOLDER: [("console.dashboard", "Dashboard")],
    Role.ADMIN: [
        ("admin.users", "Users"),
        ("admin.lines", "Phone lines"),
        ("console.alerts_page", "Alerts"),
        ("console.dashboard", "Dashboard"),
    ],
}


def init_app(app: Flask) -> None:
    """Register the context processor, the local-time filters and the other template filters."""
    from crisis_console.services.lines import language_name

    app.add_template_filter(language_name, "language_name")
    zone = app.extensions[localtime.EXTENSION]
    # ``{{ value|localtime }}`` → 2015-02-09 14:05 EST; styles "seconds", "time", "date".
    app.add_template_filter(
        lambda value, style="minute": localtime.format_time(value, zone, style), "localtime"
    )
    # ``value="{{ value|localinput }}"`` for a datetime-local input, in the console's zone.
    app.add_template_filter(lambda value: localtime.input_value(value, zone), "localinput")

    @app.context_processor
    def globals_for_templates() -> dict[str, Any]:
        try:
            user = current_user if current_user.is_authenticated else None
        except RedisError:  # an error page while Redis is down must still render
            user = None
        return {
            "user": user,
            "active_events": _active_events(user),
            "nav_links": NAVIGATION.get(user.role, []) if user else [],
            "cc_events": names.as_dict(),
            "home_endpoint": HOME_ENDPOINT,
            "page_namespace": _namespace_for(user),
            "crisis_timezone": zone.key,
            # "New York" for America/New_York: what a form's label calls the console's clock.
            "zone_label": zone.key.rsplit("/", 1)[-1].replace("_", " "),
        }


def _namespace_for(user: Any) -> str:
    """Pick the namespace this page connects to: the one matching the page, if allowed."""
    if user is None:
        return ""
    by_page = {"console.agent": names.AGENT, "console.dashboard": names.DASHBOARD}
    wanted = by_page.get(request.endpoint or "", ROLE_NAMESPACE[user.role])
    return wanted if user.role in NAMESPACE_ROLES[wanted] else ROLE_NAMESPACE[user.role]


def _active_events(user: Any) -> list[Any]:
    """Return the active events for the banner (none for signed-out pages or if Redis fails)."""
    if user is None:
        return []
    from crisis_console.extensions import store
    from crisis_console.services.events import Events

    try:
        return Events(store()).active()
    except RedisError:
        return []


# The category catalogue page, for the roles that may change the catalogue.
NAVIGATION[Role.ADMIN].append(("admin.categories", "Categories"))
NAVIGATION[Role.MANAGER].append(("admin.categories", "Categories"))
