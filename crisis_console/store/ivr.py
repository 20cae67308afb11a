"""Phone lines, surge announcements, and the per-call records behind their statistics."""

from __future__ import annotations

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys
from crisis_console.store.records import Records

#: Seconds a call's record is kept (long enough for any status callback).
CALL_TTL = 24 * 3600

# Counting a call that hears an announcement, once per call, in one round trip.
_CALL_STARTED = """
if redis.call('HSETNX', KEYS[1], 'announcement_id', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'line_id', ARGV[2], 'language', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[2], 'calls', 1)
redis.call('HINCRBY', KEYS[2], 'heard', 1)
return 1
"""

# Counting a call's outcome exactly once, whichever callback arrives first or twice.
_OUTCOME = """
if redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1
"""


class NumberTaken(Exception):
    """Another line already has this number."""


class LineBusy(Exception):
    """An announcement is active on the line."""


class LineRepo(Records):
    """Phone lines, found by id or by number."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        super().__init__(
            client, audit, seq_key=keys.line_seq(), record_key=keys.line, index_key=keys.lines_index()
        )
        self._keys = keys

    def create_line(self, fields: dict[str, str], audit: AuditEntry) -> int:
        """Store a line, claiming its number; raise NumberTaken if another line has it."""
        line_id = self.new_id()
        if not self._r.hsetnx(self._keys.lines_by_number(), fields["number"], line_id):
            raise NumberTaken(fields["number"])
        entry = AuditEntry(audit.actor, audit.action, f"line:{line_id}", audit.details, audit.at)
        return self.create(
            fields, entry, lambda pipe, _id: pipe.incr(self._keys.ivr_version()), record_id=line_id
        )

    def delete_line(self, line_id: int | str, number: str, audit: AuditEntry) -> None:
        """Delete a line and free its number, atomically with its audit entry.

        Raises:
            LineBusy: an announcement is active on the line (checked in the same transaction).
        """
        pointer = self._keys.line_announcement(line_id)

        def attempt(pipe: redis.client.Pipeline) -> None:
            if pipe.exists(pointer):
                raise LineBusy(str(line_id))
            pipe.multi()
            pipe.delete(self._keys.line(line_id))
            pipe.zrem(self._keys.lines_index(), str(line_id))
            pipe.hdel(self._keys.lines_by_number(), number)
            pipe.incr(self._keys.ivr_version())
            self._audit.add_to(pipe, audit)

        self._r.transaction(attempt, pointer)

    def id_for_number(self, number: str) -> str | None:
        """Return the id of the line with this number, or None."""
        return self._r.hget(self._keys.lines_by_number(), number)


class AnnouncementRepo(Records):
    """Announcements, the one active per line, and call statistics."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        super().__init__(
            client,
            audit,
            seq_key=keys.announcement_seq(),
            record_key=keys.announcement,
            index_key=keys.announcements_index(),
        )
        self._keys = keys
        self._outcome = client.register_script(_OUTCOME)
        self._call_started = client.register_script(_CALL_STARTED)

    def version(self) -> str:
        """Return the phone-line version (moves on every line or activation change)."""
        return self._r.get(self._keys.ivr_version()) or "0"

    def active_id(self, line_id: int | str) -> str | None:
        """Return the id of the announcement activated on a line, or None."""
        return self._r.get(self._keys.line_announcement(line_id))

    def set_active(
        self, pipe: redis.client.Pipeline, line_id: int | str, announcement_id: int | str | None
    ) -> None:
        """Queue making ``announcement_id`` the line's active one (None clears it)."""
        pipe.incr(self._keys.ivr_version())
        if announcement_id is None:
            pipe.delete(self._keys.line_announcement(line_id))
        else:
            pipe.set(self._keys.line_announcement(line_id), str(announcement_id))

    def stats(self, announcement_id: int | str) -> dict[str, int]:
        """Return calls, heard, deflected and routed counts."""
        raw = self._r.hgetall(self._keys.announcement_stats(announcement_id))
        return {name: int(raw.get(name, 0)) for name in ("calls", "heard", "deflected", "routed")}

    def call_started(
        self, call_sid: str, announcement_id: int | str, line_id: int | str, language: str
    ) -> bool:
        """Record a call that hears an announcement; False if this call was already counted."""
        keys = [self._keys.call(call_sid), self._keys.announcement_stats(announcement_id)]
        return bool(
            self._call_started(keys=keys, args=[str(announcement_id), str(line_id), language, CALL_TTL])
        )

    def call(self, call_sid: str) -> dict[str, str]:
        """Return a call's record ({} when unknown)."""
        return self._r.hgetall(self._keys.call(call_sid))

    def call_outcome(self, call_sid: str, outcome: str) -> bool:
        """Count a heard call as routed or deflected, once; False if already counted or unknown."""
        record = self.call(call_sid)
        if not record.get("announcement_id"):
            return False
        keys = [self._keys.call(call_sid), self._keys.announcement_stats(record["announcement_id"])]
        return bool(self._outcome(keys=keys, args=[outcome]))
