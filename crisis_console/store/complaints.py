"""Complaint categories, the complaint stream and the per-minute / per-hour trend counters."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys

# The minute and hour counters a complaint bumps (KEYS[2], KEYS[3]); ARGV[1] category, ARGV[2] zip.
_BUMP_COUNTERS = """
for i = 2, 3 do
  redis.call('HINCRBY', KEYS[i], 'total', 1)
  redis.call('HINCRBY', KEYS[i], 'c:' .. ARGV[1], 1)
  if ARGV[2] ~= '' then
    redis.call('HINCRBY', KEYS[i], 'z:' .. ARGV[2], 1)
    redis.call('HINCRBY', KEYS[i], 'cz:' .. ARGV[1] .. ':' .. ARGV[2], 1)
  end
end
"""

# One round trip per complaint: the record and every counter it bumps, atomically.
_INGEST = (
    """
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
"""
    + _BUMP_COUNTERS
    + "return id\n"
)


# The same, at most once per idempotency id: KEYS[4] holds the stream id of the first time.
# ARGV: category, zip, seconds the id is remembered, fields...
_INGEST_ONCE = (
    """
local seen = redis.call('GET', KEYS[4])
if seen then
  return {seen, 0}
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
"""
    + _BUMP_COUNTERS
    + """redis.call('SET', KEYS[4], id, 'EX', ARGV[3])
return {id, 1}
"""
)

#: Seconds an idempotency id is remembered: far longer than any outage whose spool is replayed.
ONCE_SECONDS = 30 * 24 * 3600


# Move one category's counters to another in the given minute/hour hashes: ARGV old, new.
_MOVE_COUNTS = """
local moved = 0
local old_c, new_c = 'c:' .. ARGV[1], 'c:' .. ARGV[2]
local old_cz = 'cz:' .. ARGV[1] .. ':'
for _, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local name, value = fields[i], fields[i + 1]
    if name == old_c then
      redis.call('HINCRBY', key, new_c, value)
      redis.call('HDEL', key, name)
      moved = moved + 1
    elseif string.sub(name, 1, #old_cz) == old_cz then
      redis.call('HINCRBY', key, 'cz:' .. ARGV[2] .. ':' .. string.sub(name, #old_cz + 1), value)
      redis.call('HDEL', key, name)
    end
  end
end
return moved
"""


class CategoryTaken(Exception):
    """The code, a name or an alias already belongs to another category."""


#: Seconds this process reuses the name -> code map before reading it again. Intake reads it
#: for every complaint; a name it does not know is always looked up afresh, so only a renamed
#: alias can take this long to reach another process.
NAMES_TTL = 2.0


class CategoryRepo:
    """The category catalogue and the name -> code map intake uses."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit
        self._names: tuple[float, dict[str, str]] | None = None
        self._all: tuple[float, list[dict[str, str]]] | None = None

    def save(
        self, code: str, fields: dict[str, str], names: list[str], entry: AuditEntry, *, new: bool
    ) -> None:
        """Store a category, claim its names (code, name, aliases) and audit it, all or nothing.

        Raises:
            CategoryTaken: a name already maps to another category (or the code exists, if new).
        """
        index = self._keys.category_names()

        def write(pipe: redis.client.Pipeline) -> None:
            if new and pipe.exists(self._keys.category(code)):
                raise CategoryTaken(code)
            owners = pipe.hmget(index, names) if names else []
            clash = [n for n, owner in zip(names, owners, strict=True) if owner not in (None, code)]
            if clash:
                raise CategoryTaken(clash[0])
            stale = [n for n, owner in pipe.hgetall(index).items() if owner == code and n not in names]
            pipe.multi()
            pipe.hset(self._keys.category(code), mapping={**fields, "code": code})
            pipe.zadd(self._keys.categories_index(), {code: time.time()}, nx=True)
            if stale:
                pipe.hdel(index, *stale)
            if names:
                pipe.hset(index, mapping=dict.fromkeys(names, code))
            self._audit.add_to(pipe, entry)

        self._r.transaction(write, index, self._keys.category(code))
        self._names = self._all = None

    def get(self, code: str) -> dict[str, str] | None:
        """Return a category's fields, or None."""
        return self._r.hgetall(self._keys.category(code)) or None

    def merge(
        self,
        source: str,
        into: str,
        into_fields: dict[str, str],
        source_fields: dict[str, str],
        entry: AuditEntry,
    ) -> None:
        """Give every name of ``source`` to ``into``, update both and audit it, all or nothing."""
        index = self._keys.category_names()

        def write(pipe: redis.client.Pipeline) -> None:
            owned = [name for name, owner in pipe.hgetall(index).items() if owner == source]
            pipe.multi()
            if owned:
                pipe.hset(index, mapping=dict.fromkeys(owned, into))
            pipe.hset(self._keys.category(into), mapping=into_fields)
            pipe.hset(self._keys.category(source), mapping=source_fields)
            self._audit.add_to(pipe, entry)

        self._r.transaction(write, index, self._keys.category(source), self._keys.category(into))
        self._names = self._all = None

    def move_counts(self, source: str, into: str, batch: int = 500) -> int:
        """Move ``source``'s minute and hour counters (also per ZIP) onto ``into``'s; return the
        number of buckets that held some. Each batch of buckets moves atomically."""
        script = self._r.register_script(_MOVE_COUNTS)
        moved, keys = 0, []
        for key in self._r.scan_iter(match=self._keys.trend_pattern(), count=1000):
            keys.append(key)
            if len(keys) >= batch:
                moved += int(script(keys=keys, args=[source, into]))
                keys = []
        if keys:
            moved += int(script(keys=keys, args=[source, into]))
        return moved

    def seed(self, rows: list[tuple[str, dict[str, str], list[str]]], entry: AuditEntry) -> list[str]:
        """Store the starter categories once per deployment, with one audit entry; return the
        codes added (none if it was seeded before). A code that exists is left alone; a name
        another category already has stays that category's."""
        index, marker = self._keys.category_names(), self._keys.catalogue_seeded()
        added: list[str] = []

        def write(pipe: redis.client.Pipeline) -> None:
            added.clear()
            if pipe.exists(marker):
                return
            owners = pipe.hgetall(index)
            existing = set(pipe.zrange(self._keys.categories_index(), 0, -1))
            plan = []
            for code, fields, names in rows:
                if code in existing:
                    continue
                free = [n for n in names if owners.get(n) in (None, code)]
                owners.update(dict.fromkeys(free, code))
                plan.append((code, fields, free))
            pipe.multi()
            now = time.time()
            for offset, (code, fields, free) in enumerate(plan):
                pipe.hset(self._keys.category(code), mapping={**fields, "code": code})
                pipe.zadd(self._keys.categories_index(), {code: now + offset / 1000}, nx=True)
                if free:
                    pipe.hset(index, mapping=dict.fromkeys(free, code))
                added.append(code)
            pipe.set(marker, entry.at)
            self._audit.add_to(pipe, entry)

        self._r.transaction(write, index, marker, self._keys.categories_index())
        self._names = self._all = None
        return list(added)

    def all(self, *, max_age: float = 0.0) -> list[dict[str, str]]:
        """Return every category, in creation order (a copy at most ``max_age`` seconds old)."""
        cached = self._all
        if cached is not None and time.monotonic() - cached[0] <= max_age:
            return cached[1]
        codes = self._r.zrange(self._keys.categories_index(), 0, -1)
        pipe = self._r.pipeline(transaction=False)
        for code in codes:
            pipe.hgetall(self._keys.category(code))
        rows = [fields for fields in pipe.execute() if fields]
        self._all = (time.monotonic(), rows)
        return rows

    def names(self, *, fresh: bool = False) -> dict[str, str]:
        """Return lower-cased code/name/alias -> code (a copy at most ``NAMES_TTL`` old unless ``fresh``)."""
        cached = self._names
        if fresh or cached is None or time.monotonic() - cached[0] > NAMES_TTL:
            cached = self._names = (time.monotonic(), self._r.hgetall(self._keys.category_names()))
        return cached[1]


class ComplaintRepo:
    """Append complaints and read the counters."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self._r = client
        self._keys = keys
        self._ingest = client.register_script(_INGEST)
        self._ingest_once = client.register_script(_INGEST_ONCE)

    def add_many(self, records: list[tuple[str, str, str, str, dict[str, str]]]) -> list[str]:
        """Store complaints given as (minute, hour, category, zip, fields); return their stream ids.

        One pipelined round trip for the batch; each complaint is atomic on its own.
        """

        # EVALSHA straight into the pipeline: redis-py's Script objects would first ask the
        # server whether the script exists, one more round trip on every batch.
        def send() -> list[str]:
            pipe = self._r.pipeline(transaction=False)
            for minute, hour, category, zip_code, fields in records:
                flat = [value for pair in fields.items() for value in pair]
                keys = [self._keys.complaints(), self._keys.trend_minute(minute), self._keys.trend_hour(hour)]
                pipe.evalsha(self._ingest.sha, 3, *keys, category, zip_code, *flat)
            return pipe.execute()

        try:
            return send()
        except redis.exceptions.NoScriptError:
            # First use, or Redis restarted: a missing script fails before running, so
            # nothing was stored; load it and send the batch again.
            self._r.script_load(_INGEST)
            return send()

    def add_many_once(
        self, records: list[tuple[str, str, str, str, dict[str, str]]], once: list[str]
    ) -> list[tuple[str, bool]]:
        """Store complaints as :meth:`add_many`, each at most once per idempotency id in ``once``
        (same order); return (stream id, whether it was new) for each — the id stored the
        first time for one already seen. The check and the append are one atomic script."""

        def send() -> list[tuple[str, bool]]:
            pipe = self._r.pipeline(transaction=False)
            for (minute, hour, category, zip_code, fields), message_id in zip(records, once, strict=True):
                flat = [value for pair in fields.items() for value in pair]
                keys = [
                    self._keys.complaints(),
                    self._keys.trend_minute(minute),
                    self._keys.trend_hour(hour),
                    self._keys.intake_once(message_id),
                ]
                pipe.evalsha(self._ingest_once.sha, 4, *keys, category, zip_code, ONCE_SECONDS, *flat)
            return [(str(entry_id), bool(int(new))) for entry_id, new in pipe.execute()]

        try:
            return send()
        except redis.exceptions.NoScriptError:
            self._r.script_load(_INGEST_ONCE)
            return send()

    def applied_once(self, message_id: str) -> bool:
        """Return whether the spooled keyword text ``message_id`` was applied already."""
        return bool(self._r.exists(self._keys.sms_applied(message_id)))

    def mark_applied(self, message_id: str, at: str) -> None:
        """Record that the spooled keyword text ``message_id`` was applied (at ISO time ``at``)."""
        self._r.set(self._keys.sms_applied(message_id), at, ex=ONCE_SECONDS)

    def counts(self, buckets: list[str], hourly: bool) -> list[dict[str, str]]:
        """Return the counter hashes of the given minutes (or hours), in order."""
        key = self._keys.trend_hour if hourly else self._keys.trend_minute
        pipe = self._r.pipeline(transaction=False)
        for bucket in buckets:
            pipe.hgetall(key(bucket))
        return pipe.execute()

    def count_fields(self, buckets: list[str], hourly: bool, fields: list[str]) -> list[list[int]]:
        """Return, for each minute (or hour), the counters named ``fields`` (0 when absent)."""
        key = self._keys.trend_hour if hourly else self._keys.trend_minute
        pipe = self._r.pipeline(transaction=False)
        for bucket in buckets:
            pipe.hmget(key(bucket), fields)
        return [[int(v or 0) for v in row] for row in pipe.execute()]

    def recent(self, count: int = 50) -> list[dict[str, Any]]:
        """Return the newest complaints, newest first."""
        rows = self._r.xrevrange(self._keys.complaints(), count=count)
        return [{"id": entry_id, **fields} for entry_id, fields in rows]

    def first_sighting(self, category: str, zip_code: str, seconds: int = 2 * 3600) -> bool:
        """Return True the first time a spike of this category (and area) is seen in ``seconds``."""
        return bool(self._r.set(self._keys.spike_seen(category, zip_code), "1", nx=True, ex=seconds))

    def occurred_between(
        self, start: str, end: str, *, received_from_ms: int, limit: int, chunk: int = 2000
    ) -> list[dict[str, Any]]:
        """Return complaints whose ``occurred_at`` is in [start, end) (ISO, as stored), by that time.

        The stream is in order of receipt, not of occurrence (a replay stores weeks of past
        contacts in minutes), so it is read from ``received_from_ms`` (epoch ms: no complaint
        in the window was received earlier) to its end, in chunks, keeping at most ``limit``.
        Stored times share one format (:func:`crisis_console.clock.iso`), so they compare as text.
        """
        found: list[dict[str, Any]] = []
        low = str(received_from_ms)
        while len(found) < limit:
            rows = self._r.xrange(self._keys.complaints(), min=low, max="+", count=chunk)
            found.extend(
                {"id": entry_id, **fields}
                for entry_id, fields in rows
                if start <= fields.get("occurred_at", "") < end
            )
            if len(rows) < chunk:
                break
            low = "(" + rows[-1][0]
        found.sort(key=lambda record: (record.get("occurred_at", ""), record["id"]))
        return found[:limit]

    def get(self, entry_id: str) -> dict[str, Any] | None:
        """Return one complaint by its stream id, or None (also for a malformed id)."""
        try:
            rows = self._r.xrange(self._keys.complaints(), min=entry_id, max=entry_id, count=1)
        except redis.ResponseError:
            return None
        return {"id": rows[0][0], **rows[0][1]} if rows else None

    def remember_sms(self, phone: str, state: dict[str, Any], seconds: int = 1800) -> None:
        """Keep a texter's unfinished report while they choose a category."""
        self._r.set(self._keys.sms_pending(phone), json.dumps(state), ex=seconds)

    def take_sms(self, phone: str) -> dict[str, Any] | None:
        """Return and forget a texter's unfinished report."""
        pipe = self._r.pipeline(transaction=True)
        pipe.get(self._keys.sms_pending(phone))
        pipe.delete(self._keys.sms_pending(phone))
        raw, _deleted = pipe.execute()
        return json.loads(raw) if raw else None

    def length(self) -> int:
        """Return how many complaints are stored."""
        return self._r.xlen(self._keys.complaints())


def dumps(value: Any) -> str:
    """JSON for list/dict fields."""
    return json.dumps(value, ensure_ascii=False)
