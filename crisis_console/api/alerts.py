"""API routes for alerts (history, delivery status, acknowledge) and the spike suggestions."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request
from flask_login import current_user

from crisis_console.alert_hooks import hooks_of
from crisis_console.api import bp
from crisis_console.api.body import json_object
from crisis_console.auth.roles import roles_required
from crisis_console.extensions import store
from crisis_console.roles import Role
from crisis_console.services import suggestions
from crisis_console.services.errors import ValidationError
from crisis_console.sockets import realtime


@bp.route("/alerts")
@roles_required(Role.MANAGER, Role.ADMIN)
def list_alerts() -> Any:
    """Return the newest alerts (``limit``, default 100) with each delivery's status."""
    raw = request.args.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ValidationError("limit must be a number from 1 to 500.", field="limit")
    return jsonify({"alerts": hooks_of(current_app).alerting.recent(int(raw))})


@bp.route("/alerts/<int:alert_id>")
@roles_required(Role.MANAGER, Role.ADMIN)
def get_alert(alert_id: int) -> Any:
    """Return one alert with its deliveries."""
    return jsonify(hooks_of(current_app).alerting.get(alert_id))


@bp.route("/alerts/<int:alert_id>/ack", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def acknowledge_alert(alert_id: int) -> Any:
    """Acknowledge an alert: its escalation stops; the first to acknowledge is recorded."""
    alert = hooks_of(current_app).alerting.acknowledge(alert_id, current_user)
    realtime.alert_sent(alert)
    return jsonify(alert)


@bp.route("/suggestions")
@roles_required(Role.MANAGER)
def list_suggestions() -> Any:
    """Return what can be drafted for a category's spike (``category`` = a code)."""
    category = request.args.get("category", "")
    if not category:
        raise ValidationError("category is required.", field="category")
    return jsonify({"suggestions": suggestions.for_spike(store(), {"category": category})})


@bp.route("/suggestions/draft", methods=["POST"])
@roles_required(Role.MANAGER)
def draft_suggestion() -> Any:
    """Create the filled drafts a suggestion offers: ``{kind: script|announcement, hazard, event_id?}``."""
    result = suggestions.draft(store(), json_object(), actor=current_user.username)
    made = result["kind"] == "announcement" or result["scripts"]
    return jsonify(result), 201 if made else 200
