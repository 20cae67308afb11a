"""API routes for phone lines and surge announcements."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_login import current_user

from crisis_console.api import bp
from crisis_console.api.body import json_object
from crisis_console.auth.roles import roles_required
from crisis_console.extensions import store
from crisis_console.roles import Role
from crisis_console.services import callflow
from crisis_console.services.announcements import Announcements
from crisis_console.services.errors import ValidationError
from crisis_console.services.lines import Lines


@bp.route("/lines", methods=["POST"])
@roles_required(Role.ADMIN)
def create_line() -> Any:
    """Add a phone line ``{number, name, route, languages?, test?}``."""
    line = Lines(store()).create(json_object(), actor=current_user.username)
    return jsonify(line.public()), 201


@bp.route("/lines/<int:line_id>", methods=["PATCH"])
@roles_required(Role.ADMIN)
def update_line(line_id: int) -> Any:
    """Change a line's ``name``, ``route``, ``languages`` or ``test`` flag."""
    line = Lines(store()).update(line_id, json_object(), actor=current_user.username)
    return jsonify(line.public())


@bp.route("/lines/<int:line_id>", methods=["DELETE"])
@roles_required(Role.ADMIN)
def delete_line(line_id: int) -> Any:
    """Delete a phone line; 409 while an announcement is active on it."""
    Lines(store()).delete(line_id, actor=current_user.username)
    return "", 204


@bp.route("/lines")
@roles_required(Role.ADMIN, Role.MANAGER)
def list_lines() -> Any:
    """List the phone lines."""
    return jsonify({"lines": [line.public() for line in Lines(store()).list()]})


@bp.route("/announcements", methods=["POST"])
@roles_required(Role.MANAGER)
def create_announcement() -> Any:
    """Write a draft announcement ``{line_id, messages, voice?, audio_url?, starts_at?, ends_at?}``."""
    announcement = Announcements(store()).create(json_object(), actor=current_user.username)
    return jsonify(announcement.public()), 201


@bp.route("/scripts/<int:script_id>/announcement", methods=["POST"])
@roles_required(Role.MANAGER)
def announcement_from_script(script_id: int) -> Any:
    """Draft an announcement from an approved script's key message ``{line_id}``, per language."""
    data = json_object()
    announcement = Announcements(store()).from_script(
        script_id, data.get("line_id"), actor=current_user.username
    )
    return jsonify(announcement.public()), 201


@bp.route("/announcements")
@roles_required(Role.MANAGER, Role.STAKEHOLDER)
def list_announcements() -> Any:
    """List announcements, most recently changed first."""
    return jsonify({"announcements": [a.public() for a in Announcements(store()).list()]})


@bp.route("/announcements/<int:announcement_id>")
@roles_required(Role.MANAGER, Role.STAKEHOLDER)
def get_announcement(announcement_id: int) -> Any:
    """Return one announcement with its statistics."""
    service = Announcements(store())
    return jsonify({**service.require(announcement_id).public(), "stats": service.stats(announcement_id)})


@bp.route(
    "/announcements/<int:announcement_id>/<any(submit, approve, return, activate, end):action>",
    methods=["POST"],
)
@roles_required(Role.MANAGER)
def act_on_announcement(announcement_id: int, action: str) -> Any:
    """Submit, approve, return, activate or end an announcement."""
    announcement, _ = Announcements(store()).act(announcement_id, action, actor=current_user.username)
    return jsonify(announcement.public())


@bp.route("/announcements/<int:announcement_id>/stats")
@roles_required(Role.MANAGER, Role.STAKEHOLDER)
def announcement_stats(announcement_id: int) -> Any:
    """Return ``{calls, heard, deflected, routed}``."""
    return jsonify(Announcements(store()).stats(announcement_id))


@bp.route("/announcements/<int:announcement_id>/preview")
@roles_required(Role.MANAGER)
def preview_announcement(announcement_id: int) -> Any:
    """Return exactly what a caller hears: the TwiML and the spoken text, per ``?lang=``."""
    announcement = Announcements(store()).require(announcement_id)
    line = Lines(store()).require(announcement.line_id)
    language = request.args.get("lang") or next(iter(announcement.messages))
    if language not in announcement.messages:
        raise ValidationError(f"lang must be one of: {', '.join(announcement.messages)}.", field="lang")
    response = callflow.announce(line, announcement, language)
    return jsonify(
        {
            "language": language,
            "twiml": str(response),
            "text": announcement.messages[language],
            "spoken_seconds": announcement.public()["spoken_seconds"][language],
        }
    )
