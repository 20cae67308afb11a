"""API routes for scripts and pushes."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_login import current_user

from crisis_console.api import bp
from crisis_console.api.body import json_object
from crisis_console.auth.roles import roles_required, signed_in
from crisis_console.extensions import store
from crisis_console.roles import Role
from crisis_console.services.errors import ValidationError
from crisis_console.services.pushes import Pushes
from crisis_console.services.scripts import Scripts
from crisis_console.sockets import realtime
from scripts_library.model import State


def scripts() -> Scripts:
    """Return the script service over the app's store."""
    return Scripts(store())


def detail(script_id: int) -> dict[str, Any]:
    """Return a script with its versions (newest first) and translations.

    Agent notes are internal: only agents and managers see them.
    """
    service = scripts()
    script = service.require(script_id)
    versions = list(reversed(service.versions(script_id)))
    if current_user.role not in (Role.AGENT, Role.MANAGER):
        versions = [without_notes(version) for version in versions]
    return {**script.public(), "versions": versions, "translations": service.translations(script)}


def without_notes(version: dict[str, Any]) -> dict[str, Any]:
    """Return a version without its agent notes (nor those of the template it began as)."""
    stripped = {k: v for k, v in version.items() if k != "agent_notes"}
    if isinstance(version.get("template"), dict):
        stripped["template"] = {k: v for k, v in version["template"].items() if k != "agent_notes"}
    return stripped


@bp.route("/scripts", methods=["POST"])
@roles_required(Role.MANAGER)
def create_script() -> Any:
    """Create a draft ``{title, topic, language, body, summary?, agent_notes?, event_id?, expires_at?,
    translation_of?}``."""
    script = scripts().create(json_object(), actor=current_user.username)
    return jsonify(detail(script.id)), 201


@bp.route("/scripts")
@signed_in
def list_scripts() -> Any:
    """List scripts: ``?state=approved&event_id=…&language=…``."""
    state = request.args.get("state") or None
    if state is not None and state not in set(State):
        raise ValidationError(f"state must be one of: {', '.join(State)}.", field="state")
    found = scripts().list(
        state=state, event_id=request.args.get("event_id"), language=request.args.get("language")
    )
    return jsonify({"scripts": [s.public() for s in found]})


@bp.route("/scripts/current")
@roles_required(Role.AGENT, Role.MANAGER)
def current_scripts() -> Any:
    """Return every script agents may see now, rendered (for search on the agent page)."""
    return jsonify({"scripts": scripts().current()})


@bp.route("/scripts/import", methods=["POST"])
@roles_required(Role.MANAGER)
def import_scripts() -> Any:
    """Create drafts from the hazard library for ``{event_id, hazard?}``; never twice.

    Templates already imported for the event are listed in ``existing`` (200 when nothing
    was new); ``id`` is the script to open (the first created, else the first existing).
    """
    data = json_object()
    if data.get("event_id") in (None, ""):
        raise ValidationError("event_id is required.", field="event_id")
    imported = scripts().import_templates(
        data["event_id"], hazard=data.get("hazard"), actor=current_user.username
    )
    first = imported.first()
    body = {
        "id": first.id if first else None,
        "scripts": [s.public() for s in imported.created],
        "existing": [s.public() for s in imported.existing],
    }
    return jsonify(body), 201 if imported.created else 200


@bp.route("/scripts/<int:script_id>")
@signed_in
def get_script(script_id: int) -> Any:
    """Return a script with its versions and translations."""
    return jsonify(detail(script_id))


@bp.route("/scripts/<int:script_id>", methods=["PATCH"])
@roles_required(Role.MANAGER)
def edit_script(script_id: int) -> Any:
    """Edit a script; an approved one gets a new draft version."""
    scripts().edit(script_id, json_object(), actor=current_user.username)
    return jsonify(detail(script_id))


@bp.route("/scripts/<int:script_id>/<any(submit, approve, return, retire):action>", methods=["POST"])
@roles_required(Role.MANAGER)
def act_on_script(script_id: int, action: str) -> Any:
    """Submit, approve, return to draft or retire a script."""
    scripts().act(script_id, action, actor=current_user.username)
    return jsonify(detail(script_id))


@bp.route("/scripts/<int:script_id>/diff")
@signed_in
def diff_script(script_id: int) -> Any:
    """Return the difference between two versions: ``?from=1&to=2`` (default: the last two)."""
    script = scripts().require(script_id)
    new = request.args.get("to", str(script.version))
    old = request.args.get("from", str(max(1, int(new) - 1) if new.isdigit() else 1))
    for field, value in (("from", old), ("to", new)):
        if not value.isdigit():
            raise ValidationError(f"{field} must be a version number.", field=field)
    return jsonify({"from": int(old), "to": int(new), "lines": scripts().diff(script_id, old, new)})


@bp.route("/scripts/<int:script_id>/push", methods=["POST"])
@roles_required(Role.MANAGER)
def push_script(script_id: int) -> Any:
    """Push the approved version to ``{audience: "all" | [team, …]}``."""
    data = json_object() if request.get_data() else {}
    push = Pushes(store()).push(script_id, data.get("audience", "all"), actor=current_user.username)
    return jsonify({k: v for k, v in push.items() if k != "script"}), 201


@bp.route("/pushes/<int:push_id>")
@roles_required(Role.MANAGER)
def get_push(push_id: int) -> Any:
    """Return a push's delivery and acknowledgement counts and who is pending."""
    return jsonify(Pushes(store()).status(push_id))


@bp.route("/pushes")
@roles_required(Role.AGENT, Role.MANAGER)
def list_pushes() -> Any:
    """Agents: the pushes missed after ``?after_seq=N``, oldest first, with the newest ``last_seq``.
    Managers: the latest pushes.

    ``last_seq`` lets a client check cheaply for a gap (``after_seq`` = the last it saw) and
    move its cursor past pushes addressed to other teams.
    """
    pushes = Pushes(store())
    if current_user.role == Role.MANAGER and "after_seq" not in request.args:
        return jsonify({"pushes": pushes.recent(20)})
    after = request.args.get("after_seq", "0")
    if not after.isdigit():
        raise ValidationError("after_seq must be a whole number.", field="after_seq")
    return jsonify(pushes.catch_up(current_user, int(after)))


@bp.route("/pushes/<int:push_id>/ack", methods=["POST"])
@roles_required(Role.AGENT)
def ack_push(push_id: int) -> Any:
    """Acknowledge a push over HTTP (the page normally does it over the socket)."""
    pushes = Pushes(store())
    pushes.status(push_id)  # 404 for a push that does not exist
    progress = pushes.receipt(push_id, current_user.id, acknowledged=True)
    if progress is None:
        raise ValidationError("This push was not addressed to you.", field="push_id", code="not_addressed")
    realtime.push_progress(progress)
    return jsonify(progress)
