"""Entities kept as Redis hashes with an id counter and a listing index."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo

Pipeline = redis.client.Pipeline


class Records:
    """Create, read, list and change one kind of hash record, each change audited atomically."""

    def __init__(
        self,
        client: redis.Redis,
        audit: AuditRepo,
        *,
        seq_key: str,
        record_key: Callable[[int | str], str],
        index_key: str,
    ):
        self._r = client
        self._audit = audit
        self._seq = seq_key
        self._key = record_key
        self._index = index_key

    def new_id(self) -> int:
        """Hand out the next id."""
        return int(self._r.incr(self._seq))

    def create(
        self,
        fields: dict[str, str],
        audit: AuditEntry,
        also: Callable[[Pipeline, int], None] | None = None,
        record_id: int | None = None,
    ) -> int:
        """Store a new record (and ``also``'s extra writes) with its audit entry; return its id."""
        record_id = record_id or self.new_id()
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._key(record_id), mapping={**fields, "id": str(record_id)})
        pipe.zadd(self._index, {str(record_id): time.time()})
        if also:
            also(pipe, record_id)
        self._audit.add_to(pipe, audit)
        pipe.execute()
        return record_id

    def get(self, record_id: int | str) -> dict[str, str] | None:
        """Return the record's fields, or None."""
        if not str(record_id).isdigit():
            return None
        return self._r.hgetall(self._key(record_id)) or None

    def all(self, newest_first: bool = True, limit: int = 500) -> list[dict[str, str]]:
        """Return records by index order."""
        ids = (
            self._r.zrevrange(self._index, 0, limit - 1)
            if newest_first
            else self._r.zrange(self._index, 0, limit - 1)
        )
        pipe = self._r.pipeline(transaction=False)
        for record_id in ids:
            pipe.hgetall(self._key(record_id))
        return [fields for fields in pipe.execute() if fields]

    def change(
        self,
        record_id: int | str,
        decide: Callable[[dict[str, str]], tuple[dict[str, str], AuditEntry]],
        also: Callable[[Pipeline], None] | None = None,
    ) -> dict[str, str]:
        """Apply ``decide`` to the current fields atomically and return the new fields.

        ``decide`` sees the record as it is (retried if another writer changes it meanwhile),
        may raise to refuse, and returns the fields to set with the audit entry to write.
        """
        key = self._key(record_id)

        def attempt(pipe: Pipeline) -> dict[str, str]:
            current = pipe.hgetall(key)
            updates, entry = decide(current)
            pipe.multi()
            if updates:  # a change that changes nothing (saving a form as it was) is still audited
                pipe.hset(key, mapping=updates)
            pipe.zadd(self._index, {str(record_id): time.time()}, xx=True)
            if also:
                also(pipe)
            self._audit.add_to(pipe, entry)
            return {**current, **updates}

        return self._r.transaction(attempt, key, value_from_callable=True)
