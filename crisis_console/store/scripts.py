"""Scripts: a hash per script, every version kept as JSON, translations grouped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys
from crisis_console.store.records import Records

#: decide(script fields, latest version) -> (script updates, version to write or None, audit entry)
Decision = tuple[dict[str, str], dict[str, Any] | None, AuditEntry]


class LanguageTaken(Exception):
    """The translation group already has a script in this language."""


class ScriptRepo(Records):
    """Scripts and their versions."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        super().__init__(
            client, audit, seq_key=keys.script_seq(), record_key=keys.script, index_key=keys.scripts_index()
        )
        self._keys = keys

    def create_script(self, fields: dict[str, str], first_version: dict[str, Any], audit: AuditEntry) -> int:
        """Store a script with version 1, claiming its language in its translation group.

        Raises:
            LanguageTaken: the group already has this language.
        """
        script_id = self.new_id()
        group_id = fields.get("group_id") or str(script_id)
        if not self._r.hsetnx(self._keys.script_group(group_id), fields["language"], script_id):
            raise LanguageTaken(fields["language"])
        entry = AuditEntry(audit.actor, audit.action, f"script:{script_id}", audit.details, audit.at)

        def also(pipe: redis.client.Pipeline, new_id: int) -> None:
            pipe.hset(self._keys.script_versions(new_id), "1", json.dumps(first_version))

        return self.create({**fields, "group_id": group_id}, entry, also, record_id=script_id)

    def versions(self, script_id: int | str) -> list[dict[str, Any]]:
        """Return every version, oldest first."""
        raw = self._r.hgetall(self._keys.script_versions(script_id))
        return [json.loads(raw[number]) for number in sorted(raw, key=int)]

    def version(self, script_id: int | str, number: int | str) -> dict[str, Any] | None:
        """Return one version, or None."""
        raw = self._r.hget(self._keys.script_versions(script_id), str(number))
        return json.loads(raw) if raw else None

    def many_versions(self, pairs: list[tuple[int | str, int | str]]) -> list[dict[str, Any] | None]:
        """Return several (script id, version) pairs in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        for script_id, number in pairs:
            pipe.hget(self._keys.script_versions(script_id), str(number))
        return [json.loads(raw) if raw else None for raw in pipe.execute()]

    def claim_expiry(self, script_id: int | str, expires_at: str, audit: AuditEntry) -> bool:
        """Record the expiry in the audit trail and return True, for the one caller that first
        reports it (a Lua script would make the two one step; the set member is claimed first,
        so the worst case is an expiry announced without its audit line, never twice)."""
        if not self._r.sadd(self._keys.scripts_expired(), f"{script_id}:{expires_at}"):
            return False
        self._audit.append(audit)
        return True

    def translations(self, group_id: int | str) -> dict[str, str]:
        """Return language -> script id for a translation group."""
        return self._r.hgetall(self._keys.script_group(group_id))

    def change_script(
        self, script_id: int | str, decide: Callable[[dict[str, str], dict[str, Any] | None], Decision]
    ) -> dict[str, str]:
        """Apply ``decide`` atomically to a script and its latest version; return the new fields."""
        key = self._keys.script(script_id)
        versions_key = self._keys.script_versions(script_id)

        def attempt(pipe: redis.client.Pipeline) -> dict[str, str]:
            current = pipe.hgetall(key)
            latest_raw = pipe.hget(versions_key, current["version"]) if current else None
            latest = json.loads(latest_raw) if latest_raw else None
            updates, version, entry = decide(current, latest)
            updates = {**updates, "updated_at": entry.at}
            pipe.multi()
            pipe.hset(key, mapping=updates)
            if version is not None:
                pipe.hset(versions_key, str(version["version"]), json.dumps(version))
            pipe.zadd(self._index, {str(script_id): time.time()})
            self._audit.add_to(pipe, entry)
            return {**current, **updates}

        # The versions hash changes only together with the script hash, so watching the
        # script hash is enough to see any concurrent change.
        return self._r.transaction(attempt, key, value_from_callable=True)
