"""Each role's home page."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, send_from_directory, url_for
from flask_login import current_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from crisis_console import clock
from crisis_console.alert_hooks import hooks_of
from crisis_console.api.channels import channels
from crisis_console.auth.loaders import share_links
from crisis_console.auth.roles import roles_required
from crisis_console.console import bp
from crisis_console.extensions import accounts, store
from crisis_console.roles import HOME_ENDPOINT, VIEWER, Role
from crisis_console.services import spikes, suggestions, trends
from crisis_console.services.activity import Recent
from crisis_console.services.announcements import LONG_SECONDS, WORDS_PER_SECOND, Announcements
from crisis_console.services.categories import Categories
from crisis_console.services.events import KINDS, SEVERITIES, Events
from crisis_console.services.lines import Lines
from crisis_console.services.milestones import MILESTONES, Milestones, human_duration
from crisis_console.services.pushes import Pushes
from crisis_console.services.scripts import Scripts
from scripts_library import languages
from scripts_library.model import State
from scripts_library.rendering import render_markdown
from scripts_library.templates import HAZARDS, MAX_SUMMARY, TOPICS

#: Stood-down events listed on the manager console (for their timing reports).
PAST_EVENTS = 10


@bp.route("/")
def index() -> Response:
    """Send a signed-in user to their role's page, anyone else to sign in."""
    if current_user.is_authenticated:
        return redirect(url_for(HOME_ENDPOINT[current_user.role]))
    return redirect(url_for("auth.login"))


@bp.route("/favicon.ico")
def favicon() -> Response:
    """Serve the icon browsers ask for at the site root (pages link the SVG one)."""
    return send_from_directory(
        current_app.static_folder or "", "favicon.ico", mimetype="image/vnd.microsoft.icon", max_age=86400
    )


@bp.route("/manager")
@roles_required(Role.MANAGER)
def manager() -> str:
    """Show the manager console: events, scripts by state, pushes with live progress, activity."""
    users = accounts().all()
    agents = [u for u in users if u.role == Role.AGENT and u.active]
    teams: dict[str, int] = {}
    for agent in agents:
        teams[agent.team or "(no team)"] = teams.get(agent.team or "(no team)", 0) + 1
    all_scripts = Scripts(store()).list()
    by_state = {state: [s for s in all_scripts if s.state == state] for state in State}
    live = [s for s in all_scripts if s.is_current()]
    events = Events(store()).list()
    names = {c.code: c.name for c in Categories(store()).list(include_inactive=True)}
    return render_template(
        "console/manager.html",
        agent_count=len(agents),
        teams=sorted(teams.items()),
        team_names=Pushes.teams(agents),
        events=[e for e in events if e.status != "closed"],
        past_events=[e for e in events if e.status == "closed"][:PAST_EVENTS],
        by_state=by_state,
        live=live,
        imported={
            e.id: sorted(
                (
                    s
                    for s in all_scripts
                    if s.event_id == e.id and s.hazard == e.kind and s.state != State.RETIRED
                ),
                key=lambda s: s.id,
            )
            for e in events
        },
        pushes=Pushes(store()).recent(8),
        activity=Recent(store()).rows(),
        spikes=suggested_spikes(names),
        suggest=True,
        alerts=hooks_of(current_app).alerting.recent(5),
        share_links=share_links().live(),
        category_names=names,
        kinds=KINDS,
        severities=SEVERITIES,
        hazards=HAZARDS,
        topics=TOPICS,
        max_summary=MAX_SUMMARY,
        **channel_panels(),
    )


def channel_panels() -> dict[str, Any]:
    """Return what the channel panels show: a report per active event, and the phone lines."""
    report = channels()
    return {
        "reports": [report.report(event.id) for event in Events(store()).active()],
        "lines": Lines(store()).list(),
    }


@bp.route("/manager/channels")
@roles_required(Role.MANAGER)
def channels_fragment() -> str:
    """Return the channel panels alone, for the console to refresh them live."""
    return render_template("console/_channels.html", **channel_panels())


def suggested_spikes(names: dict[str, str]) -> list[dict[str, object]]:
    """Return the spikes now, each hazard's draft suggestion on the first spike that offers it."""
    found = trends.spikes_at(store())["spikes"]
    offered = suggestions.once_per_hazard([suggestions.for_spike(store(), spike) for spike in found])
    return [
        {**spike, "label": spikes.label(spike, names), "suggestions": suggested}
        for spike, suggested in zip(found, offered, strict=True)
    ]


@bp.route("/manager/events/<int:event_id>/timing")
@roles_required(Role.MANAGER, Role.STAKEHOLDER, Role.ADMIN)
def timing(event_id: int) -> str:
    """Show an event's timing report: declaration to each milestone, as a printable table."""
    return render_template(
        "console/timing.html",
        report=Milestones(store()).report(event_id),
        labels=MILESTONES,
        duration=human_duration,
    )


@bp.route("/manager/scripts/<int:script_id>")
@roles_required(Role.MANAGER)
def script_page(script_id: int) -> str:
    """Show one script: its text, versions and the difference a reviewer must read."""
    service = Scripts(store())
    script = service.require(script_id)
    versions = service.versions(script_id)
    latest = versions[-1]
    compare_to = request.args.get("from", "")
    base = int(compare_to) if compare_to.isdigit() else (script.live_version or max(1, latest["version"] - 1))
    template = versions[0].get("template")  # the filled template an imported script began as
    from_template = bool(template) and (compare_to == "template" or base == latest["version"])
    if from_template:
        diff = service.template_diff(script_id, latest["version"])
    else:
        diff = service.diff(script_id, base, latest["version"]) if base != latest["version"] else []
    agents = [u for u in accounts().all() if u.role == Role.AGENT and u.active]
    return render_template(
        "console/script.html",
        script=script,
        latest=latest,
        versions=list(reversed(versions)),
        preview=Markup(render_markdown(latest["body"])),  # sanitised by nh3
        notes=Markup(render_markdown(latest.get("agent_notes", ""))) if latest.get("agent_notes") else "",
        lines=Lines(store()).list(),
        announceable=service.has_key_message(script),
        max_summary=MAX_SUMMARY,
        diff=diff,
        diff_from="template" if from_template else base,
        template=template,
        template_changed=any(line["kind"] != "same" for line in diff),
        translations=service.translations(script),
        is_author=current_user.username in latest.get("authors", []),
        team_names=Pushes.teams(agents),
        topics=TOPICS,
        events=Events(store()).list(),
    )


@bp.route("/agent")
@roles_required(Role.AGENT, Role.MANAGER)
def agent() -> str:
    """Show the agent page: pushed scripts newest first, and every current script to search."""
    feed = (
        Pushes(store()).feed(current_user)
        if current_user.role == Role.AGENT
        else {"pushes": [], "last_seq": 0}
    )
    categories = [c.public() for c in Categories(store()).list()]
    drills = Events(store()).exercise_ids()
    library = [{**s, "exercise": s["event_id"] in drills} for s in Scripts(store()).current()]
    present = {str(s["language"]) for s in library} | {current_user.language}
    return render_template(
        "console/agent.html",
        feed=feed,
        library=library,
        categories=categories,
        shortcuts=shortcut_categories(categories),
        my_language=current_user.language,
        languages=languages.choices(present),
        language_names={code: languages.link_text(code) for code, _name in languages.choices(present)},
    )


def shortcut_categories(categories: list[dict[str, object]], limit: int = 6) -> list[dict[str, object]]:
    """Return the categories for one-key logging (Alt+1…6).

    The most logged in the last hour come first; the rest are filled with the categories
    that answer an active event's hazard, then the catalogue's own order, so that a fresh
    install's first morning has shortcuts before anything has been logged.
    """
    recent = trends.series(store(), window="60m", bucket="60m")["totals"]
    hazards = {event.kind for event in Events(store()).active()}

    def rank(index_and_category: tuple[int, dict[str, object]]) -> tuple[int, int, int]:
        index, category = index_and_category
        answers_event = bool(hazards.intersection(category.get("hazards") or []))  # type: ignore[arg-type]
        return (-recent.get(str(category["code"]), 0), 0 if answers_event else 1, index)

    return [category for _index, category in sorted(enumerate(categories), key=rank)][:limit]


@bp.route("/dashboard")
@roles_required(Role.STAKEHOLDER, Role.MANAGER, Role.ADMIN, VIEWER)
def dashboard() -> str:
    """Show the read-only stakeholder dashboard: events and what the phone lines are playing."""
    service = Announcements(store())
    lines = Lines(store()).list()
    playing = [(line, service.current(line.id)) for line in lines]
    counts = trends.series(store(), window="60m", bucket="60m")
    last_hour = trends.recent_window(store(), "60m", None)  # read once for movers and spikes
    names = {c.code: c.name for c in Categories(store()).list(include_inactive=True)}
    top = sorted(
        ((code, n) for code, n in counts["totals"].items() if code != "all" and n), key=lambda item: -item[1]
    )
    return render_template(
        "console/dashboard.html",
        counts=counts,
        printed_at=clock.iso(),
        top=top[:15],
        movers=trends.movers_at(store(), recent=last_hour)["movers"],
        spikes=[
            {**spike, "label": spikes.label(spike, names)}
            for spike in trends.spikes_at(store(), recent=last_hour)["spikes"]
        ],
        category_names=names,
        events=Events(store()).active(),
        playing=[(line, a, service.stats(a.id)) for line, a in playing if a is not None],
        notices=hooks_of(current_app).alerting.notices(),
    )


@bp.route("/manager/phone")
@roles_required(Role.MANAGER)
def phone() -> str:
    """Show the surge announcements: write, review, activate, end, preview and live statistics."""
    lines = Lines(store()).list()
    service = Announcements(store())
    announcements = service.list()
    return render_template(
        "console/phone.html",
        lines={line.id: line for line in lines},
        languages=sorted(
            {lang for line in lines for lang in line.languages}, key=lambda lang: (lang != "en", lang)
        ),
        announcements=[(a, service.stats(a.id)) for a in announcements],
        events={e.id: e for e in Events(store()).list()},
        long_seconds=LONG_SECONDS,
        words_per_second=WORDS_PER_SECOND,
    )


@bp.route("/manager/alerts")
@roles_required(Role.MANAGER, Role.ADMIN)
def alerts_page() -> str:
    """Show alert history with each delivery's status; acknowledge stops escalation."""
    hooks = hooks_of(current_app)
    return render_template(
        "console/alerts.html",
        alerts=hooks.alerting.recent(100),
        rules=hooks.alerting.rules.rules,
        groups=hooks.alerting.rules.groups,
    )
