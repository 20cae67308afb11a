"""Agent flags ("I keep hearing about…") and the groups of similar ones they fall into."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys

Pipeline = redis.client.Pipeline
#: Most open groups a new flag is compared with (the most recently heard first).
MAX_CANDIDATES = 500


class GroupGone(Exception):
    """The group is no longer open (promoted or dismissed meanwhile)."""


@dataclass(frozen=True)
class Recorded:
    """What became of a raised flag: its group (as stored now), the flag, and whether it repeated
    one the same agent raised moments ago (then nothing was written)."""

    group: dict[str, str]
    flag: dict[str, Any]
    duplicate: bool
    new_group: bool


class FlagRepo:
    """Store flags in groups; every write is atomic with its audit entry."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit

    def add(
        self,
        flag: dict[str, Any],
        *,
        at_ms: int,
        horizon_ms: int,
        repeat_ms: int,
        choose: Callable[[list[dict[str, str]]], str | None],
        group_fields: Callable[[dict[str, str] | None], dict[str, str]],
        entry: Callable[[str, bool], AuditEntry],
    ) -> Recorded:
        """Put a flag in the open group ``choose`` picks (or a new one) and audit it, atomically.

        ``choose`` sees the open groups heard since ``horizon_ms`` (newest first) and returns a
        group id or None; ``group_fields`` returns the fields to set on that group (None: a new
        one); ``entry`` builds the audit entry for (group id, new?). A flag by the same user in
        the chosen group since ``repeat_ms`` makes this one a duplicate: nothing is written.
        Concurrent flags are serialised by watching the index, so similar texts raised at the
        same moment still land in one group.
        """
        index = self._keys.flag_groups_index()
        flag_id = str(self._r.incr(self._keys.flag_seq()))

        def attempt(pipe: Pipeline) -> Recorded:
            ids = pipe.zrevrangebyscore(index, "+inf", horizon_ms, start=0, num=MAX_CANDIDATES)
            reader = self._r.pipeline(transaction=False)
            for group_id in ids:
                reader.hgetall(self._keys.flag_group(group_id))
            groups = [g for g in reader.execute() if g.get("status") == "open"]
            chosen = choose(groups)
            current: dict[str, str] | None = None
            if chosen is not None:
                pipe.watch(self._keys.flag_group(chosen))
                current = pipe.hgetall(self._keys.flag_group(chosen))
                if current.get("status") != "open":
                    raise redis.WatchError  # closed meanwhile: look again
                for member in pipe.zrangebyscore(self._keys.flag_group_flags(chosen), repeat_ms, "+inf"):
                    earlier = json.loads(member)
                    if str(earlier.get("user_id")) == str(flag["user_id"]):
                        pipe.unwatch()
                        return Recorded(current, earlier, duplicate=True, new_group=False)
            group_id = chosen or str(self._r.incr(self._keys.flag_group_seq()))
            stored = {**flag, "id": flag_id, "group_id": group_id}
            updates = group_fields(current)
            pipe.multi()
            pipe.hset(self._keys.flag_group(group_id), mapping={**updates, "id": group_id})
            pipe.hincrby(self._keys.flag_group(group_id), "flags", 1)
            pipe.zadd(index, {group_id: at_ms})
            pipe.zadd(self._keys.flag_group_flags(group_id), {json.dumps(stored, sort_keys=True): at_ms})
            self._audit.add_to(pipe, entry(group_id, chosen is None))
            merged = {**(current or {}), **updates, "id": group_id}
            merged["flags"] = str(int(merged.get("flags") or 0) + 1)
            return Recorded(merged, stored, duplicate=False, new_group=chosen is None)

        return self._r.transaction(attempt, index, value_from_callable=True)

    def get(self, group_id: int | str) -> dict[str, str] | None:
        """Return a group's fields, or None."""
        if not str(group_id).isdigit():
            return None
        return self._r.hgetall(self._keys.flag_group(group_id)) or None

    def flags(self, group_id: int | str, since_ms: int | None = None) -> list[dict[str, Any]]:
        """Return a group's flags (those since ``since_ms``, or all), oldest first."""
        key = self._keys.flag_group_flags(group_id)
        members = self._r.zrangebyscore(key, since_ms if since_ms is not None else "-inf", "+inf")
        return [json.loads(member) for member in members]

    def heard_since(
        self, since_ms: int, limit: int = 200
    ) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
        """Return the groups with a flag since ``since_ms`` (latest first), each with those flags."""
        ids = self._r.zrevrangebyscore(self._keys.flag_groups_index(), "+inf", since_ms, start=0, num=limit)
        pipe = self._r.pipeline(transaction=False)
        for group_id in ids:
            pipe.hgetall(self._keys.flag_group(group_id))
            pipe.zrangebyscore(self._keys.flag_group_flags(group_id), since_ms, "+inf")
        rows = pipe.execute()
        result = []
        for fields, members in zip(rows[::2], rows[1::2], strict=True):
            if fields:
                result.append((fields, [json.loads(member) for member in members]))
        return result

    def close(
        self, group_id: int | str, decide: Callable[[dict[str, str]], tuple[dict[str, str], AuditEntry]]
    ) -> dict[str, str]:
        """Apply ``decide`` to an open group atomically (with its audit entry); return its fields.

        Raises:
            GroupGone: the group does not exist or is no longer open.
        """
        key = self._keys.flag_group(group_id)

        def attempt(pipe: Pipeline) -> dict[str, str]:
            current = pipe.hgetall(key)
            if current.get("status") != "open":
                raise GroupGone(current.get("status") or "")
            updates, audit_entry = decide(current)
            pipe.multi()
            pipe.hset(key, mapping=updates)
            self._audit.add_to(pipe, audit_entry)
            return {**current, **updates}

        return self._r.transaction(attempt, key, value_from_callable=True)
