"""Socket.IO namespaces and event names: the contract of API.md, in one place.

Pages receive these as ``window.CC_EVENTS`` and tests import them, so a name is spelled once.
"""

from __future__ import annotations

AGENT = "/agent"
MANAGER = "/manager"
DASHBOARD = "/dashboard"
ADMIN = "/admin"

# server -> client
SCRIPT_PUSHED = "script.pushed"
SCRIPT_RETIRED = "script.retired"
SCRIPT_CHANGED = "script.changed"
EVENT_CHANGED = "event.changed"
PUSH_PROGRESS = "push.progress"
SPIKE_DETECTED = "spike.detected"
ANNOUNCEMENT_CHANGED = "announcement.changed"
ANNOUNCEMENT_STATS = "announcement.stats"
ALERT_SENT = "alert.sent"
DELIVERY_CHANGED = "delivery.changed"
TRENDS_UPDATE = "trends.update"
USER_CHANGED = "user.changed"
SESSION_WELCOME = "session.welcome"
FLAG_RAISED = "flag.raised"
FLAG_CHANGED = "flag.changed"

# client -> server
SCRIPT_ACK = "script.ack"
SCRIPT_RECEIVED = "script.received"


def as_dict() -> dict[str, str]:
    """Return every constant, for templates and scripts."""
    return {name: value for name, value in globals().items() if name.isupper()}
