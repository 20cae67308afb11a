"""Each role's home page."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from crisis_console.auth.roles import roles_required
from crisis_console.console import bp
from crisis_console.extensions import accounts, store
from crisis_console.roles import HOME_ENDPOINT, Role

RECENT_ACTIVITY = 25


@bp.route("/")
def index() -> Response:
    """Send a signed-in user to their role's page, anyone else to sign in."""
    if current_user.is_authenticated:
        return redirect(url_for(HOME_ENDPOINT[current_user.role]))
    return redirect(url_for("auth.login"))


@bp.route("/manager")
@roles_required(Role.MANAGER)
def manager() -> str:
    """Show the manager console: the floor and the latest audited activity."""
    users = accounts().all()
    agents = [u for u in users if u.role == Role.AGENT and u.active]
    teams: dict[str, int] = {}
    for agent in agents:
        teams[agent.team or "(no team)"] = teams.get(agent.team or "(no team)", 0) + 1
    return render_template(
        "console/manager.html",
        agent_count=len(agents),
        teams=sorted(teams.items()),
        activity=store().audit.latest(RECENT_ACTIVITY),
    )


@bp.route("/agent")
@roles_required(Role.AGENT, Role.MANAGER)
def agent() -> str:
    """Show the agent page: the scripts pushed to this agent."""
    return render_template("console/agent.html")


@bp.route("/dashboard")
@roles_required(Role.STAKEHOLDER, Role.MANAGER, Role.ADMIN)
def dashboard() -> str:
    """Show the read-only stakeholder dashboard."""
    return render_template("console/dashboard.html")
