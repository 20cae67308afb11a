"""Named server pushes: views, services' callers and the worker call these, never raw emits.

Each push is sent only after the change it announces has been written (and audited).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from redis import RedisError

from crisis_console.extensions import socketio, store
from crisis_console.sockets import names

log = logging.getLogger(__name__)


def user_room(user_id: int | str) -> str:
    """Room holding every connection of one user."""
    return f"user:{user_id}"


def role_room(role: str) -> str:
    """Room holding every connection of one role."""
    return f"role:{role}"


def team_room(team: str) -> str:
    """Room holding every connection of one team."""
    return f"team:{team}"


def disconnect_user(user_id: int | str) -> int:
    """Close every live connection of a user, on every web process; return how many."""
    connections = store().sockets.all(user_id)
    for namespace, sid in connections:
        try:
            socketio.server.disconnect(sid, namespace=namespace)
        except Exception:  # a connection that vanished meanwhile is already closed
            current_app.logger.info("socket %s on %s was already gone", sid, namespace)
        store().sockets.remove(user_id, namespace, sid)
    return len(connections)


def user_changed(user: dict[str, Any]) -> None:
    """Tell admin pages that a user was created or changed."""
    socketio.emit(names.USER_CHANGED, {"user": user}, namespace=names.ADMIN)


def push_rooms(audience: str | list[str]) -> str | list[str]:
    """Return the rooms of a push's audience: every agent, or the listed teams."""
    return role_room("agent") if audience == "all" else [team_room(team) for team in audience]


def script_pushed(message: dict[str, Any], audience: str | list[str]) -> None:
    """Send a push to the agents of its audience (all agents, or the listed teams)."""
    socketio.emit(names.SCRIPT_PUSHED, message, namespace=names.AGENT, to=push_rooms(audience))


def socket_caught_up(sid: str, seq: int) -> None:
    """Tell this process's healing queue manager that a socket's handshake replayed up to ``seq``."""
    from crisis_console.sockets.healing import HealingRedisManager

    manager = getattr(socketio.server, "manager", None)
    if isinstance(manager, HealingRedisManager):
        manager.socket_caught_up(sid, seq)


def socket_gone(sid: str) -> None:
    """Tell this process's healing queue manager that a socket closed."""
    from crisis_console.sockets.healing import HealingRedisManager

    manager = getattr(socketio.server, "manager", None)
    if isinstance(manager, HealingRedisManager):
        manager.socket_gone(sid)


def push_progress(progress: dict[str, Any]) -> None:
    """Tell managers how many agents received and acknowledged a push."""
    socketio.emit(names.PUSH_PROGRESS, progress, namespace=names.MANAGER)


#: The latest progress of each push waiting to be sent by this process.
_pending_progress: dict[int, dict[str, Any]] = {}
#: Seconds over which receipts (or calls) are gathered into one message.
PROGRESS_INTERVAL = 0.25
#: Announcements whose statistics are due to be sent by this process.
_pending_stats: set[int] = set()


def push_progress_soon(progress: dict[str, Any]) -> None:
    """Send a push's progress within PROGRESS_INTERVAL, merged with any that follow.

    A thousand receipts in a second become four messages to managers, not a thousand.
    """
    push_id = progress["push_id"]
    latest = _pending_progress.get(push_id)
    # Receipts are handled concurrently, so counts may arrive out of order: keep the highest.
    _pending_progress[push_id] = (
        progress
        if latest is None
        else {
            **progress,
            "delivered": max(progress["delivered"], latest["delivered"]),
            "acknowledged": max(progress["acknowledged"], latest["acknowledged"]),
        }
    )
    if latest is None:
        socketio.start_background_task(_send_progress_later, push_id)


def _send_progress_later(push_id: int) -> None:
    socketio.sleep(PROGRESS_INTERVAL)
    progress = _pending_progress.pop(push_id, None)
    if progress is not None:
        push_progress(progress)


def script_retired(script_id: int) -> None:
    """Remove a script from every agent's page (and tell managers)."""
    for namespace in (names.AGENT, names.MANAGER):
        socketio.emit(names.SCRIPT_RETIRED, {"script_id": script_id}, namespace=namespace)


def script_changed(script: dict[str, Any]) -> None:
    """Tell managers a script changed state or text (review queues refresh)."""
    socketio.emit(names.SCRIPT_CHANGED, {"script": script}, namespace=names.MANAGER)


def event_changed(event: dict[str, Any]) -> None:
    """Tell every page an event changed, so banners update."""
    for namespace in (names.AGENT, names.MANAGER, names.DASHBOARD, names.ADMIN):
        socketio.emit(names.EVENT_CHANGED, {"event": event}, namespace=namespace)


def announcement_changed(announcement: dict[str, Any]) -> None:
    """Tell managers and dashboards an announcement changed state."""
    for namespace in (names.MANAGER, names.DASHBOARD):
        socketio.emit(names.ANNOUNCEMENT_CHANGED, {"announcement": announcement}, namespace=namespace)


def announcement_stats_soon(app_store: Any, announcement_id: int) -> None:
    """Send an announcement's call statistics within PROGRESS_INTERVAL, once for many calls."""
    if announcement_id in _pending_stats or socketio.server is None:
        return  # already due, or a process without Socket.IO (statistics stay in Redis)
    _pending_stats.add(announcement_id)
    socketio.start_background_task(_send_stats_later, app_store, announcement_id)


def _send_stats_later(app_store: Any, announcement_id: int) -> None:
    socketio.sleep(PROGRESS_INTERVAL)
    _pending_stats.discard(announcement_id)
    try:
        stats = app_store.announcements.stats(announcement_id)
    except RedisError as exc:  # the next call will send them; the phone line is unaffected
        log.warning("could not read statistics of announcement %s: %s", announcement_id, exc)
        return
    for namespace in (names.MANAGER, names.DASHBOARD):
        socketio.emit(
            names.ANNOUNCEMENT_STATS, {"announcement_id": announcement_id, **stats}, namespace=namespace
        )


#: Complaints accepted by this process since the last trends.update was sent.
_pending_complaints = {"count": 0}


def trends_changed(accepted: int) -> None:
    """Tell dashboards new complaints were counted, at most once per PROGRESS_INTERVAL.

    Dashboards re-read the counters they show; one message stands for a whole burst.
    """
    waiting = _pending_complaints["count"] > 0
    _pending_complaints["count"] += accepted
    if not waiting and socketio.server is not None:
        socketio.start_background_task(_send_trends_later)


def _send_trends_later() -> None:
    socketio.sleep(PROGRESS_INTERVAL)
    count, _pending_complaints["count"] = _pending_complaints["count"], 0
    socketio.emit(names.TRENDS_UPDATE, {"accepted": count}, namespace=names.DASHBOARD)


def spike_detected(spike: dict[str, Any]) -> None:
    """Tell managers and dashboards a category is surging."""
    for namespace in (names.MANAGER, names.DASHBOARD):
        socketio.emit(names.SPIKE_DETECTED, spike, namespace=namespace)


def alert_sent(alert: dict[str, Any]) -> None:
    """Show a raised alert on managers' consoles, and its message on dashboards when it is for stakeholders."""
    from crisis_console.services.alerting import notice

    socketio.emit(names.ALERT_SENT, {"alert": alert}, namespace=names.MANAGER)
    if alert.get("on_dashboard"):
        socketio.emit(names.ALERT_SENT, {"alert": notice(alert)}, namespace=names.DASHBOARD)


def delivery_changed(delivery: dict[str, Any]) -> None:
    """Tell the alerts page a delivery's status changed (sent, delivered, failed)."""
    socketio.emit(names.DELIVERY_CHANGED, {"delivery": delivery}, namespace=names.MANAGER)


def _to_flag_readers(event: str, message: dict[str, Any]) -> None:
    """Send to managers' consoles, and on dashboards only to the roles that may read flags."""
    from crisis_console.services.flags import FLAG_READERS

    socketio.emit(event, message, namespace=names.MANAGER)
    socketio.emit(event, message, namespace=names.DASHBOARD, to=[role_room(role) for role in FLAG_READERS])


def flag_raised(flag: dict[str, Any], group: dict[str, Any]) -> None:
    """Show managers and stakeholders an agent's new flag (never who raised it) and its group."""
    _to_flag_readers(names.FLAG_RAISED, {"flag": flag, "group": group})


def flag_changed(group: dict[str, Any]) -> None:
    """Tell managers and stakeholders a flag group was promoted or dismissed."""
    _to_flag_readers(names.FLAG_CHANGED, {"group": group})
