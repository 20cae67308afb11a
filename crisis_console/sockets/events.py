"""Socket.IO namespace handlers: every connection is authenticated and role-checked at connect.

``before_request`` does not run for socket events, so the check lives in ``on_connect``:
the session cookie (Flask-Login's ``current_user``) or ``auth={"token": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, Namespace, emit, join_room
from redis import RedisError

from crisis_console.extensions import (
    DEPARTURES_EXTENSION,
    RECEIPTS_EXTENSION,
    STORE_EXTENSION,
    accounts,
    socketio,
    store,
)
from crisis_console.roles import NAMESPACE_ROLES, Role
from crisis_console.services.accounts import User
from crisis_console.services.errors import ServiceError
from crisis_console.services.pushes import Pushes
from crisis_console.services.receipts import ReceiptBatcher, push_number
from crisis_console.sockets import names, realtime
from crisis_console.sockets.departures import Departures

log = logging.getLogger(__name__)

#: (namespace, sid) -> user id, for this process's connections.
_connections: dict[tuple[str, str], int | str] = {}


def authenticate(auth: Any) -> User | None:
    """Return the user behind a connection attempt: an ``auth`` token, else the cookie."""
    if isinstance(auth, dict) and auth.get("token"):
        return accounts().user_for_token(str(auth["token"]))
    if current_user.is_authenticated:
        return current_user  # type: ignore[return-value]
    return None


def socket_user(namespace: str) -> User | None:
    """Return the still-valid user of the current connection, re-read from the store.

    Handlers of client events call this, so a user disabled after connecting is refused.
    """
    user_id = _connections.get((namespace, request.sid))  # type: ignore[attr-defined]
    if user_id is None:
        return None
    user = accounts().get(user_id)
    if user is None or not user.active:
        return None
    return user


class RoleNamespace(Namespace):
    """A namespace that only the roles of ``NAMESPACE_ROLES`` may join."""

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Route ``noun.verb`` events (API.md's names) to ``on_noun_verb`` methods."""
        return super().trigger_event((event or "").replace(".", "_"), *args)

    @contextmanager
    def store_or_refuse(self) -> Iterator[None]:
        """Refuse a connection that cannot reach the store (Redis restarting, the pool used
        up) with ``store_unavailable``, which clients retry, instead of failing half-way."""
        try:
            yield
        except RedisError as exc:
            _connections.pop((self.namespace, request.sid), None)  # type: ignore[attr-defined]
            log.warning("refused a %s connection, store unavailable: %s", self.namespace, exc)
            raise ConnectionRefusedError("store_unavailable") from None

    def on_connect(self, auth: Any = None) -> None:
        """Refuse unauthenticated or wrong-role connections; join the user's rooms."""
        with self.store_or_refuse():
            self._join(auth)

    def _join(self, auth: Any) -> None:
        user = authenticate(auth)
        if user is None:
            raise ConnectionRefusedError("unauthorized")
        if user.role not in NAMESPACE_ROLES[self.namespace]:
            raise ConnectionRefusedError("forbidden")
        sid: str = request.sid  # type: ignore[attr-defined]
        _connections[(self.namespace, sid)] = user.id
        store().sockets.add(user.id, self.namespace, sid)
        join_room(realtime.user_room(user.id))
        join_room(realtime.role_room(user.role))
        if user.team:
            join_room(realtime.team_room(user.team))
        emit(names.SESSION_WELCOME, {"user": user.public()})

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the connection."""
        sid: str = request.sid  # type: ignore[attr-defined]
        user_id = _connections.pop((self.namespace, sid), None)
        if user_id is not None:  # forgotten in Redis with the other closed connections
            current_app.extensions[DEPARTURES_EXTENSION].add(user_id, self.namespace, sid)


class AgentNamespace(RoleNamespace):
    """Agents receive pushes (receipts are handled by :func:`init_receipts`)."""

    def on_connect(self, auth: Any = None) -> None:
        """Authenticate, then replay every push missed since ``auth["last_seq"]``, in order."""
        super().on_connect(auth)
        with self.store_or_refuse():
            self._catch_up(auth)

    def _catch_up(self, auth: Any) -> None:
        last_seq = auth.get("last_seq") if isinstance(auth, dict) else None
        if isinstance(last_seq, int) and not isinstance(last_seq, bool) and last_seq >= 0:
            user = socket_user(self.namespace)
            if user is not None and user.role == Role.AGENT:
                caught_up = Pushes(store()).catch_up(user, last_seq)
                for message in caught_up["pushes"]:
                    emit(names.SCRIPT_PUSHED, message)
                # This process's queue manager heals later gaps from here, not from zero.
                realtime.socket_caught_up(request.sid, caught_up["last_seq"])  # type: ignore[attr-defined]

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the connection (and what it was caught up to)."""
        realtime.socket_gone(request.sid)  # type: ignore[attr-defined]
        super().on_disconnect(reason)


def init_departures(app: Flask) -> None:
    """Forget closed connections in batches (see :mod:`crisis_console.sockets.departures`)."""
    app.extensions[DEPARTURES_EXTENSION] = Departures(
        app.extensions[STORE_EXTENSION], spawn=socketio.start_background_task, sleep=socketio.sleep
    )


def init_receipts(app: Flask) -> None:
    """Handle receipts and acknowledgements from agent pages on the bare Socket.IO server.

    A push to a thousand agents brings a thousand ``script.received`` within a second or
    two. Flask-SocketIO builds an app and request context and copies the session for every
    event, which cost more than the receipt itself (profiled with py-spy); these handlers
    need neither, as the connection's user was authenticated at connect and is closed at
    once if signed out or disabled. A receipt is only noted in memory
    (:class:`ReceiptBatcher` writes them in batches); an acknowledgement is written at once
    and confirmed. Must run after ``socketio.init_app(app)``.
    """
    server = socketio.server
    app_store = app.extensions[STORE_EXTENSION]
    batcher = ReceiptBatcher(
        app_store,
        report=realtime.push_progress_soon,
        spawn=socketio.start_background_task,
        sleep=socketio.sleep,
    )
    app.extensions[RECEIPTS_EXTENSION] = batcher

    def user_of(sid: str) -> int | str | None:
        user_id = _connections.get((names.AGENT, sid))
        if user_id is None:
            server.disconnect(sid, namespace=names.AGENT)
        return user_id

    def received(sid: str, data: Any = None) -> dict[str, Any]:
        user_id = user_of(sid)
        if user_id is None:
            return {"ok": False, "error": "unauthorized"}
        push_id = push_number(data.get("push_id") if isinstance(data, dict) else None)
        if push_id is None:
            return {"ok": False, "error": "validation_error", "field": "push_id"}
        batcher.add(push_id, str(user_id))
        return {"ok": True}

    def acknowledged(sid: str, data: Any = None) -> dict[str, Any]:
        user_id = user_of(sid)
        if user_id is None:
            return {"ok": False, "error": "unauthorized"}
        push_id = data.get("push_id") if isinstance(data, dict) else None
        try:
            progress = Pushes(app_store).receipt(push_id, user_id, acknowledged=True)
        except ServiceError as exc:
            return {"ok": False, "error": exc.code, "field": exc.field}
        except RedisError:
            # Not recorded: the page keeps retrying (acknowledgements are idempotent).
            return {"ok": False, "error": "store_unavailable", "retry": True}
        if progress is not None:
            realtime.push_progress_soon(progress)
        return {"ok": True}

    server.on(names.SCRIPT_RECEIVED, received, namespace=names.AGENT)
    server.on(names.SCRIPT_ACK, acknowledged, namespace=names.AGENT)


# Handlers are registered at import, before socketio.init_app(app) runs in the factory:
# a module-level SocketIO keeps them for every app created later in the same process.
socketio.on_namespace(AgentNamespace(names.AGENT))
socketio.on_namespace(RoleNamespace(names.MANAGER))
socketio.on_namespace(RoleNamespace(names.DASHBOARD))
socketio.on_namespace(RoleNamespace(names.ADMIN))
