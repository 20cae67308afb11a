"""Users: one hash each, a unique-name index and a listing index."""

from __future__ import annotations

import time

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys


class DuplicateName(Exception):
    """Another user already has this username."""


class UserRepo:
    """Read and write user hashes; every write is audited in the same transaction."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit

    def create(self, fields: dict[str, str], audit: AuditEntry) -> int:
        """Store a new user and its audit entry atomically; return the new id.

        Raises:
            DuplicateName: the lower-cased username is taken.
        """
        name = fields["username"].lower()
        index = self._keys.users_by_name()

        def write(pipe: redis.client.Pipeline) -> int:
            if pipe.hexists(index, name):
                raise DuplicateName(name)
            user_id = int(pipe.incr(self._keys.user_seq()))
            pipe.multi()
            pipe.hset(index, name, user_id)
            pipe.hset(self._keys.user(user_id), mapping={**fields, "id": str(user_id)})
            pipe.zadd(self._keys.users_index(), {str(user_id): time.time()})
            self._index_agent(pipe, user_id, {**fields, "id": str(user_id)})
            self._audit.add_to(pipe, _with_subject(audit, user_id))
            return user_id

        return self._r.transaction(write, index, value_from_callable=True)

    def get(self, user_id: int | str) -> dict[str, str] | None:
        """Return the user's fields, or None."""
        fields = self._r.hgetall(self._keys.user(user_id))
        return fields or None

    def id_for_name(self, username: str) -> str | None:
        """Return the id of the user with this (case-insensitive) name, or None."""
        return self._r.hget(self._keys.users_by_name(), username.lower())

    def all(self) -> list[dict[str, str]]:
        """Return every user, oldest first."""
        ids = self._r.zrange(self._keys.users_index(), 0, -1)
        pipe = self._r.pipeline(transaction=False)
        for user_id in ids:
            pipe.hgetall(self._keys.user(user_id))
        return [fields for fields in pipe.execute() if fields]

    def count(self) -> int:
        """Return how many users exist."""
        return self._r.zcard(self._keys.users_index())

    def update(
        self,
        user_id: int | str,
        fields: dict[str, str],
        audit: AuditEntry,
        *,
        end_sessions: bool = False,
    ) -> None:
        """Change fields and write the audit entry atomically.

        ``end_sessions`` bumps the user's session epoch, which invalidates every
        session cookie issued before the change.
        """
        key = self._keys.user(user_id)

        def write(pipe: redis.client.Pipeline) -> None:
            current = pipe.hgetall(key)
            pipe.multi()
            if fields:
                pipe.hset(key, mapping=fields)
            if end_sessions:
                pipe.hincrby(key, "session_epoch", 1)
            self._index_agent(pipe, user_id, {**current, **fields})
            self._audit.add_to(pipe, audit)

        self._r.transaction(write, key)

    def _index_agent(self, pipe: redis.client.Pipeline, user_id: int | str, fields: dict[str, str]) -> None:
        """Keep the active-agents index in step with a user's role, team and state."""
        if fields.get("role") == "agent" and fields.get("active", "1") == "1":
            pipe.hset(self._keys.active_agents(), str(user_id), fields.get("team", ""))
        else:
            pipe.hdel(self._keys.active_agents(), str(user_id))

    def active_agents(self) -> dict[str, str]:
        """Return user id -> team of every active agent."""
        return self._r.hgetall(self._keys.active_agents())


def _with_subject(audit: AuditEntry, user_id: int) -> AuditEntry:
    """Fill the new user's id into an entry written before the id was known."""
    return AuditEntry(
        actor=audit.actor,
        action=audit.action,
        subject=f"user:{user_id}",
        details=audit.details,
        at=audit.at,
    )
