"""API routes for emergency events."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_login import current_user

from crisis_console.api import bp
from crisis_console.api.body import json_object
from crisis_console.auth.roles import dashboard_readers, roles_required, signed_in
from crisis_console.extensions import store
from crisis_console.roles import Role
from crisis_console.services.errors import ValidationError
from crisis_console.services.events import STATUSES, Events
from crisis_console.services.milestones import Milestones


def events() -> Events:
    """Return the event service over the app's store."""
    return Events(store())


@bp.route("/events", methods=["POST"])
@roles_required(Role.MANAGER)
def create_event() -> Any:
    """Create a draft event ``{name, kind, severity, areas?, details?, exercise?}``."""
    event = events().create(json_object(), actor=current_user.username)
    return jsonify(event.public()), 201


@bp.route("/events")
@dashboard_readers(status="active")  # a viewer sees the active events, as the dashboard
def list_events() -> Any:
    """List events, newest first; ``?status=active`` for the declared ones."""
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of: {', '.join(STATUSES)}.", field="status")
    return jsonify({"events": [e.public() for e in events().list(status)]})


@bp.route("/events/<int:event_id>")
@signed_in
def get_event(event_id: int) -> Any:
    """Return one event."""
    return jsonify(events().require(event_id).public())


@bp.route("/events/<int:event_id>", methods=["PATCH"])
@roles_required(Role.MANAGER)
def update_event(event_id: int) -> Any:
    """Change an open event's name, severity, areas or details."""
    event = events().update(event_id, json_object(), actor=current_user.username)
    return jsonify(event.public())


@bp.route("/events/<int:event_id>/declare", methods=["POST"])
@roles_required(Role.MANAGER)
def declare_event(event_id: int) -> Any:
    """Declare a draft event: it becomes active and shows on every page."""
    event = events().declare(event_id, actor=current_user.username)
    return jsonify(event.public())


@bp.route("/events/<int:event_id>/timing")
@roles_required(Role.MANAGER, Role.STAKEHOLDER, Role.ADMIN)
def event_timing(event_id: int) -> Any:
    """Return the event's timing report: each milestone's time and its delay after declaration."""
    return jsonify(Milestones(store()).report(event_id))


@bp.route("/events/<int:event_id>/stand-down", methods=["POST"])
@roles_required(Role.MANAGER)
def stand_down_event(event_id: int) -> Any:
    """Stand down an active event: it closes."""
    event = events().stand_down(event_id, actor=current_user.username)
    return jsonify(event.public())
