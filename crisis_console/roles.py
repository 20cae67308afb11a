"""The four roles, what each may reach, and where each lands after signing in."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's single role."""

    MANAGER = "manager"
    AGENT = "agent"
    STAKEHOLDER = "stakeholder"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)

#: Not a user's role: whoever opened a manager's share link may watch the dashboard, and
#: only that, until the link expires or is revoked.
VIEWER = "viewer"


#: Endpoint of each role's home page, where signing in lands.
HOME_ENDPOINT: dict[str, str] = {
    Role.MANAGER: "console.manager",
    Role.AGENT: "console.agent",
    Role.STAKEHOLDER: "console.dashboard",
    Role.ADMIN: "admin.users",
    VIEWER: "console.dashboard",
}

#: Socket.IO namespaces and the roles allowed to connect to each.
NAMESPACE_ROLES: dict[str, frozenset[str]] = {
    "/agent": frozenset({Role.AGENT, Role.MANAGER}),
    "/manager": frozenset({Role.MANAGER}),
    "/dashboard": frozenset({Role.STAKEHOLDER, Role.MANAGER, Role.ADMIN, VIEWER}),
    "/admin": frozenset({Role.ADMIN}),
}
