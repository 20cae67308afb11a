"""API routes for what each channel says now, and for publishing the public channels again."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request
from flask_login import current_user

from crisis_console.api import bp
from crisis_console.auth.roles import roles_required
from crisis_console.extensions import store
from crisis_console.public.pages import public_status
from crisis_console.roles import Role
from crisis_console.services import audit
from crisis_console.services.cap_feed import CapFeed, CapSettings
from crisis_console.services.channels import Channels, Sources
from crisis_console.services.errors import ValidationError
from crisis_console.services.key_message import key_message
from crisis_console.subscribers import EXTENSION


def channels() -> Channels:
    """Return the channel report over the app's store and its public channels' state."""
    app_store = store()
    feed = CapFeed(app_store, CapSettings.from_config(current_app.config))
    return Channels(
        app_store,
        Sources(
            public=lambda: public_status(app_store),
            sms=lambda language, event_id: key_message(app_store, language, event_id),
            cap=feed.status,
        ),
    )


@bp.route("/channels")
@roles_required(Role.MANAGER)
def channel_report() -> Any:
    """Return what each channel says now for ``?event_id=`` (agents, phone, sms, public, cap)."""
    event_id = request.args.get("event_id", "")
    if not event_id.isdigit():
        raise ValidationError("event_id must be an event number.", field="event_id")
    return jsonify(channels().report(event_id))


@bp.route("/channels/republish", methods=["POST"])
@roles_required(Role.MANAGER)
def republish_channels() -> Any:
    """Publish the public page and CAP again from the current approved scripts (audited)."""
    app_store = store()
    app_store.audit.append(audit.entry(current_user.username, "channels.republished", "channels"))
    current_app.extensions[EXTENSION].publish(app_store)
    return jsonify({"public": public_status(app_store)})
