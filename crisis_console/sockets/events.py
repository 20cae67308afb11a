"""Socket.IO namespace handlers: every connection is authenticated and role-checked at connect.

``before_request`` does not run for socket events, so the check lives in ``on_connect``:
the session cookie (Flask-Login's ``current_user``) or ``auth={"token": ...}``.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, Namespace, disconnect, emit, join_room

from crisis_console.extensions import accounts, socketio, store
from crisis_console.roles import NAMESPACE_ROLES, Role
from crisis_console.services.accounts import User
from crisis_console.services.errors import ServiceError
from crisis_console.services.pushes import Pushes
from crisis_console.sockets import names, realtime

#: sid -> (user id, session id at connect), per namespace, for this process's connections.
_connections: dict[tuple[str, str], tuple[int, str]] = {}


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
    entry = _connections.get((namespace, request.sid))  # type: ignore[attr-defined]
    if entry is None:
        return None
    user = accounts().get(entry[0])
    if user is None or not user.active:
        return None
    return user


class RoleNamespace(Namespace):
    """A namespace that only the roles of ``NAMESPACE_ROLES`` may join."""

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Route ``noun.verb`` events (API.md's names) to ``on_noun_verb`` methods."""
        return super().trigger_event((event or "").replace(".", "_"), *args)

    def on_connect(self, auth: Any = None) -> None:
        """Refuse unauthenticated or wrong-role connections; join the user's rooms."""
        user = authenticate(auth)
        if user is None:
            raise ConnectionRefusedError("unauthorized")
        if user.role not in NAMESPACE_ROLES[self.namespace]:
            raise ConnectionRefusedError("forbidden")
        sid: str = request.sid  # type: ignore[attr-defined]
        _connections[(self.namespace, sid)] = (user.id, user.get_id())
        store().sockets.add(user.id, self.namespace, sid)
        join_room(realtime.user_room(user.id))
        join_room(realtime.role_room(user.role))
        if user.team:
            join_room(realtime.team_room(user.team))
        emit(names.SESSION_WELCOME, {"user": user.public()})

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget the connection."""
        sid: str = request.sid  # type: ignore[attr-defined]
        entry = _connections.pop((self.namespace, sid), None)
        if entry is not None:
            store().sockets.remove(entry[0], self.namespace, sid)


class AgentNamespace(RoleNamespace):
    """Agents receive pushes; their pages report receipt and acknowledgement."""

    def on_connect(self, auth: Any = None) -> None:
        """Authenticate, then replay every push missed since ``auth["last_seq"]``, in order."""
        super().on_connect(auth)
        last_seq = auth.get("last_seq") if isinstance(auth, dict) else None
        if isinstance(last_seq, int) and not isinstance(last_seq, bool) and last_seq >= 0:
            user = socket_user(self.namespace)
            if user is not None and user.role == Role.AGENT:
                for message in Pushes(store()).missed(user, last_seq):
                    emit(names.SCRIPT_PUSHED, message)

    def on_script_received(self, data: Any = None) -> dict[str, Any]:
        """Count a push as delivered to this agent."""
        return self._receipt(data, acknowledged=False)

    def on_script_ack(self, data: Any = None) -> dict[str, Any]:
        """Count a push as acknowledged ("Got it") by this agent."""
        return self._receipt(data, acknowledged=True)

    def _receipt(self, data: Any, *, acknowledged: bool) -> dict[str, Any]:
        user = socket_user(self.namespace)
        if user is None:
            disconnect()
            return {"ok": False, "error": "unauthorized"}
        push_id = data.get("push_id") if isinstance(data, dict) else None
        try:
            progress = Pushes(store()).receipt(push_id, user, acknowledged=acknowledged)
        except ServiceError as exc:
            return {"ok": False, "error": exc.code, "field": exc.field}
        if progress is not None:
            realtime.push_progress(progress)
        return {"ok": True}


# Handlers are registered at import, before socketio.init_app(app) runs in the factory:
# a module-level SocketIO keeps them for every app created later in the same process.
socketio.on_namespace(AgentNamespace(names.AGENT))
socketio.on_namespace(RoleNamespace(names.MANAGER))
socketio.on_namespace(RoleNamespace(names.DASHBOARD))
socketio.on_namespace(RoleNamespace(names.ADMIN))
