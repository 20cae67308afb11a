"""API routes for agents' flags ("I keep hearing about…") and their groups."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_login import current_user

from crisis_console.api import bp
from crisis_console.api.body import json_object
from crisis_console.auth.roles import roles_required
from crisis_console.extensions import store
from crisis_console.roles import Role
from crisis_console.services.flags import FLAG_READERS, Flags
from crisis_console.sockets import realtime


@bp.route("/flags", methods=["POST"])
@roles_required(Role.AGENT)
def raise_flag() -> Any:
    """Raise a flag ``{text, category?, zip?}``; a repeat within a minute answers 200, not stored."""
    raised = Flags(store()).raise_flag(json_object(), user_id=current_user.id, actor=current_user.username)
    if raised.duplicate:
        return jsonify({**raised.flag, "duplicate": True, "group": raised.group}), 200
    realtime.flag_raised(raised.flag, raised.group)
    return jsonify({**raised.flag, "duplicate": False, "group": raised.group}), 201


@bp.route("/flags")
@roles_required(*FLAG_READERS)
def list_flags() -> Any:
    """Flag groups heard in the window: ``?window=60m&status=open|promoted|dismissed|all``."""
    window = request.args.get("window", "60m")
    groups = Flags(store()).groups(window=window, status=request.args.get("status", "open"))
    return jsonify({"window": window, "groups": groups})


@bp.route("/flags/<int:group_id>/promote", methods=["POST"])
@roles_required(Role.MANAGER)
def promote_flag(group_id: int) -> Any:
    """Turn a flag group into a category ``{name?, code?}``; its flags become counted complaints."""
    data = json_object() if request.get_data() else {}  # every field is optional
    result = Flags(store()).promote(group_id, data, actor=current_user.username)
    realtime.flag_changed({**result["group"], "category_name": result["category"]["name"]})
    if result["complaints"]:
        realtime.trends_changed(result["complaints"])
    return jsonify(result)


@bp.route("/flags/<int:group_id>/dismiss", methods=["POST"])
@roles_required(Role.MANAGER)
def dismiss_flag(group_id: int) -> Any:
    """Dismiss a flag group: it leaves the panels and is not counted."""
    group = Flags(store()).dismiss(group_id, actor=current_user.username)
    realtime.flag_changed(group)
    return jsonify({"group": group})
