"""Server-side records of signed-in sessions, so signing out really ends a session."""

from __future__ import annotations

import secrets

import redis

from crisis_console.store.keys import Keys

#: Seconds a session lives without being used (a long shift plus a break).
SESSION_TTL = 16 * 3600


class SessionRepo:
    """Create, check (and renew) and end sessions by a random key."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self._r = client
        self._keys = keys

    def create(self, user_id: int | str) -> str:
        """Start a session for a user; return its key."""
        session_key = secrets.token_urlsafe(18)
        self._r.set(self._keys.session(session_key), str(user_id), ex=SESSION_TTL)
        return session_key

    def user_id(self, session_key: str) -> str | None:
        """Return the user id of a live session (renewing it), or None when it ended."""
        key = self._keys.session(session_key)
        pipe = self._r.pipeline(transaction=False)
        pipe.get(key)
        pipe.expire(key, SESSION_TTL)  # no-op on a missing key (EXPIRE XX needs Redis 7)
        user_id, _renewed = pipe.execute()
        return user_id

    def end(self, session_key: str) -> None:
        """End one session."""
        self._r.delete(self._keys.session(session_key))
