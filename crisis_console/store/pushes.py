"""Pushes: one hash each, numbered by a deployment-wide sequence, with per-agent receipts."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys

# One round trip per acknowledgement. The fourth value is 1 for the one acknowledgement that
# completes the audience (the all_acknowledged milestone), the fifth the push's event id ("" if
# none). A page's first receipt also records when it arrived (ARGV[3], ms), once.
_RECEIPT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return false end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1]) end
local added = 0
if ARGV[2] == '1' then added = redis.call('SADD', KEYS[3], ARGV[1]) end
if added == 1 then redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1]) end
local acked = redis.call('SCARD', KEYS[3])
local push = redis.call('HMGET', KEYS[4], 'audience_size', 'event_id')
local size = tonumber(push[1] or '0') or 0
local completed = 0
if added == 1 and acked == size then completed = 1 end
return {redis.call('SCARD', KEYS[2]), acked, size, completed, push[2] or ''}
"""

# A batch of "received" marks for one push: ARGV holds user id, ms pairs. Each agent of the
# audience is marked delivered once, with the time of its first receipt; others are ignored.
# Returns delivered, acknowledged, audience size.
_RECEIVED_MANY = """
for i = 1, #ARGV, 2 do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 and redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[5], ARGV[i + 1], ARGV[i])
  end
end
local size = tonumber(redis.call('HGET', KEYS[4], 'audience_size') or '0') or 0
return {redis.call('SCARD', KEYS[2]), redis.call('SCARD', KEYS[3]), size}
"""
#: Marks per script call: a Lua call holds Redis for its length, so a push to 10,000 agents
#: is written in slices.
RECEIVED_SLICE = 1000

#: The most pushes one catch-up read returns (the reader comes back for the rest).
PAGE = 500


@dataclass(frozen=True)
class Receipt:
    """What one receipt left behind: the push's counts and whether it completed the audience."""

    delivered: int
    acknowledged: int
    audience_size: int
    completed: bool
    event_id: str


class PushRepo:
    """Record pushes, who they were for, who received and who acknowledged them."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit
        self._receipt = client.register_script(_RECEIPT)
        self._received_many = client.register_script(_RECEIVED_MANY)

    def create(self, fields: dict[str, str], audience: list[int], audit: AuditEntry) -> int:
        """Store a push with the next sequence number; return it (a push's id is its seq).

        The number is taken in the same transaction that writes the push (WATCH on the
        counter, retried if another push took it first), so the sequence has no holes and
        every seq up to :meth:`last_seq` is readable: a client that saw N and then N+k knows
        exactly which pushes it may have missed, and a burned number (counter bumped, write
        failed) can never make it wait for a push that does not exist.
        """
        counter = self._keys.push_seq()
        with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(counter)
                    seq = int(pipe.get(counter) or 0) + 1
                    entry = AuditEntry(audit.actor, audit.action, f"push:{seq}", audit.details, audit.at)
                    pipe.multi()
                    pipe.set(counter, seq)
                    pipe.hset(self._keys.push(seq), mapping={**fields, "id": str(seq), "seq": str(seq)})
                    pipe.zadd(self._keys.pushes_index(), {str(seq): seq})
                    if audience:
                        pipe.sadd(self._keys.push_audience(seq), *audience)
                    self._audit.add_to(pipe, entry)
                    pipe.execute()
                    return seq
                except redis.WatchError:
                    continue

    def get(self, push_id: int | str) -> dict[str, str] | None:
        """Return a push's fields, or None."""
        if not str(push_id).isdigit():
            return None
        return self._r.hgetall(self._keys.push(push_id)) or None

    def recent(self, limit: int = 20, offset: int = 0) -> list[dict[str, str]]:
        """Return the newest pushes, newest first (skipping the ``offset`` newest)."""
        ids = self._r.zrevrange(self._keys.pushes_index(), offset, offset + limit - 1)
        pipe = self._r.pipeline(transaction=False)
        for push_id in ids:
            pipe.hgetall(self._keys.push(push_id))
        return [fields for fields in pipe.execute() if fields]

    def for_user_after(self, user_id: int | str, after_seq: int, limit: int = PAGE) -> list[dict[str, str]]:
        """Return the pushes addressed to a user with seq above ``after_seq``, oldest first."""
        ids = self._r.zrangebyscore(self._keys.pushes_index(), f"({after_seq}", "+inf", start=0, num=limit)
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for push_id in ids:
            pipe.sismember(self._keys.push_audience(push_id), str(user_id))
        addressed = [push_id for push_id, member in zip(ids, pipe.execute(), strict=True) if member]
        for push_id in addressed:
            pipe.hgetall(self._keys.push(push_id))
        return [fields for fields in pipe.execute() if fields]

    def after(self, after_seq: int, limit: int = PAGE) -> list[dict[str, str]]:
        """Return every push (whatever its audience) with seq above ``after_seq``, oldest first."""
        ids = self._r.zrangebyscore(self._keys.pushes_index(), f"({after_seq}", "+inf", start=0, num=limit)
        pipe = self._r.pipeline(transaction=False)
        for push_id in ids:
            pipe.hgetall(self._keys.push(push_id))
        return [fields for fields in pipe.execute() if fields] if ids else []

    def nth_after(self, after_seq: int, n: int) -> int | None:
        """Return the ``n``-th stored seq above ``after_seq`` (None if there are fewer):
        where a reader limited to ``n`` pushes must stop its cursor."""
        ids = self._r.zrangebyscore(self._keys.pushes_index(), f"({after_seq}", "+inf", start=n - 1, num=1)
        return int(ids[0]) if ids else None

    def last_seq(self) -> int:
        """Return the newest push's seq (0 when none)."""
        return int(self._r.get(self._keys.push_seq()) or 0)

    def _receipt_keys(self, push_id: int | str) -> list[str]:
        return [
            self._keys.push_audience(push_id),
            self._keys.push_delivered(push_id),
            self._keys.push_acknowledged(push_id),
            self._keys.push(push_id),
            self._keys.push_received_at(push_id),
            self._keys.push_acknowledged_at(push_id),
        ]

    def record_receipt(
        self, push_id: int | str, user_id: int | str, acknowledged: bool, at_ms: int
    ) -> Receipt | None:
        """Record that a user received (and maybe acknowledged) a push, ``at_ms`` (server time).

        Returns:
            The push's counts after this receipt, or None if the user was not in the push's
            audience (or there is no such push).
        """
        args = [str(user_id), "1" if acknowledged else "0", str(at_ms)]
        result = self._receipt(keys=self._receipt_keys(push_id), args=args)
        if not result:
            return None
        delivered, acked, size, completed, event_id = result
        return Receipt(int(delivered), int(acked), int(size), completed == 1, str(event_id))

    def record_received(self, marks: dict[int, dict[str, int]]) -> dict[int, tuple[int, int, int]]:
        """Record many "received" marks (push id -> user id -> ms) in one round trip.

        Returns:
            push id -> (delivered, acknowledged, audience size) after the marks.
        """
        pipe = self._r.pipeline(transaction=False)
        order: list[int] = []
        for push_id, users in marks.items():
            pairs = list(users.items())
            for start in range(0, len(pairs), RECEIVED_SLICE):
                args = [value for user, at in pairs[start : start + RECEIVED_SLICE] for value in (user, at)]
                self._received_many(keys=self._receipt_keys(push_id), args=args, client=pipe)
                order.append(push_id)
        counts: dict[int, tuple[int, int, int]] = {}
        for push_id, (delivered, acked, size) in zip(order, pipe.execute(), strict=True):
            counts[push_id] = (int(delivered), int(acked), int(size))  # the last slice's counts
        return counts

    def add_connected(self, push_id: int | str, count: int) -> None:
        """Add ``count`` connected agent sockets a web process sent the push to."""
        self._r.hincrby(self._keys.push(push_id), "connected", count)

    def times(self, push_id: int | str) -> tuple[list[int], list[int]]:
        """Return when the push first reached each page that received it, and when each agent
        acknowledged it (ms since the epoch, earliest first), in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        pipe.zrange(self._keys.push_received_at(push_id), 0, -1, withscores=True)
        pipe.zrange(self._keys.push_acknowledged_at(push_id), 0, -1, withscores=True)
        received, acknowledged = pipe.execute()
        return [int(at) for _user, at in received], [int(at) for _user, at in acknowledged]

    def receipts(self, push_id: int | str) -> tuple[set[str], set[str], set[str]]:
        """Return (audience, delivered, acknowledged) user id sets."""
        pipe = self._r.pipeline(transaction=False)
        pipe.smembers(self._keys.push_audience(push_id))
        pipe.smembers(self._keys.push_delivered(push_id))
        pipe.smembers(self._keys.push_acknowledged(push_id))
        audience, delivered, acked = pipe.execute()
        return audience, delivered, acked

    def acknowledged_by(self, user_id: int | str, push_ids: list[str]) -> set[str]:
        """Return which of ``push_ids`` the user has acknowledged."""
        pipe = self._r.pipeline(transaction=False)
        for push_id in push_ids:
            pipe.sismember(self._keys.push_acknowledged(push_id), str(user_id))
        return {push_id for push_id, done in zip(push_ids, pipe.execute(), strict=True) if done}
