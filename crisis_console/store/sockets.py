"""Which Socket.IO connections each user has open, across all web processes."""

from __future__ import annotations

import time

import redis

from crisis_console.store.keys import Keys

#: Seconds a user's socket list outlives its last connection (covers crashed processes).
SOCKETS_TTL = 24 * 3600


class SocketRepo:
    """Track live connections so that signing out can close them everywhere."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self._r = client
        self._keys = keys

    def add(self, user_id: int | str, namespace: str, sid: str) -> None:
        """Record a new connection."""
        key = self._keys.user_sockets(user_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, f"{namespace} {sid}", int(time.time()))
        pipe.expire(key, SOCKETS_TTL)
        pipe.execute()

    def remove(self, user_id: int | str, namespace: str, sid: str) -> None:
        """Forget a closed connection."""
        self._r.hdel(self._keys.user_sockets(user_id), f"{namespace} {sid}")

    def remove_many(self, connections: list[tuple[str, str, str]]) -> None:
        """Forget closed connections ``(user id, namespace, sid)`` in one round trip."""
        by_user: dict[str, list[str]] = {}
        for user_id, namespace, sid in connections:
            by_user.setdefault(user_id, []).append(f"{namespace} {sid}")
        pipe = self._r.pipeline(transaction=False)
        for user_id, fields in by_user.items():
            pipe.hdel(self._keys.user_sockets(user_id), *fields)
        pipe.execute()

    def all(self, user_id: int | str) -> list[tuple[str, str]]:
        """Return the user's open connections as (namespace, sid) pairs."""
        entries = self._r.hkeys(self._keys.user_sockets(user_id))
        return [tuple(entry.split(" ", 1)) for entry in entries]  # type: ignore[misc]
