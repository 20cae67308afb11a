"""Alerts, their deliveries and the durable delivery queue (a stream with a consumer group)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import redis

from crisis_console import clock
from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys

GROUP = "senders"
#: Statuses after which a delivery is never attempted again.
FINAL = ("sent", "delivered", "failed", "skipped")

# Take the lease of a delivery and mark an attempt started, unless the delivery is done (a
# redelivered stream entry after a crash must not send twice what was recorded as sent) or
# another worker holds the lease (it is sending it now). Returns {0} when done, {-1} when
# leased by another, else {attempt number, the status before}: a status of "sending" before
# means the previous attempt started and was never confirmed (its worker died or lost the lease).
_TAKE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'sent' or status == 'delivered' or status == 'failed' or status == 'skipped' then return {0} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {-1} end
redis.call('HSET', KEYS[1], 'status', 'sending', 'updated_at', ARGV[3], 'attempt_started_ms', ARGV[4], 'attempt_by', ARGV[5])
redis.call('HSETNX', KEYS[1], 'first_attempt_ms', ARGV[4])
return {redis.call('HINCRBY', KEYS[1], 'attempts', 1), status}
"""

# Renew a lease held with this token, and reset the idle time of the stream entry being sent
# (XCLAIM to the same consumer) so that no other worker's XAUTOCLAIM picks it up meanwhile.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[4], 0, ARGV[5], 'JUSTID') end
return 1
"""

# Record an attempt's outcome and release the lease. A send that went out ("sent") is always
# recorded, even by a worker that lost its lease meanwhile: it is a fact the next attempt's
# check relies on (and "delivered", from Twilio's callback, is never moved back). Any other
# outcome is recorded only by the lease holder: a worker that lost its lease has handed the
# delivery over (an empty token: written unconditionally). ARGV: token, kind (sent|final|retry),
# status, retry due, provider id, delivery id, then field/value pairs.
_SETTLE = """
local owner = ARGV[1] == '' or redis.call('GET', KEYS[2]) == ARGV[1]
if ARGV[2] ~= 'sent' and not owner then return 0 end
local status = ARGV[3]
if redis.call('HGET', KEYS[1], 'status') == 'delivered' then status = 'delivered' end
redis.call('HSET', KEYS[1], 'status', status)
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], ARGV[5], ARGV[6]) end
if ARGV[2] == 'retry' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6]) end
if owner and ARGV[1] ~= '' then redis.call('DEL', KEYS[2]) end
return 1
"""

#: ``take`` answers: the delivery needs nothing more, or another worker is sending it now.
DONE = "done"
BUSY = "busy"

# Move the retries that are due back into the queue, each exactly once.
_REQUEUE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 200)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'delivery_id', id)
end
return #due
"""


class AlertRepo:
    """Alerts, deliveries and the queue the delivery workers read."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)
        self._settle = client.register_script(_SETTLE)
        self._requeue_due = client.register_script(_REQUEUE_DUE)

    # --- raising -------------------------------------------------------------------

    def claim(self, dedup_key: str, seconds: int) -> bool:
        """Return True for the first claim of ``dedup_key`` within ``seconds`` (at least a week
        when the rule has no quiet period: its subject alone then tells occurrences apart)."""
        ttl = seconds if seconds > 0 else 7 * 24 * 3600
        return bool(self._r.set(self._keys.alert_dedup(dedup_key), "1", nx=True, ex=ttl))

    def claimed(self, dedup_key: str) -> bool:
        """Return True while ``dedup_key`` is claimed (its alert was raised within the quiet period)."""
        return bool(self._r.exists(self._keys.alert_dedup(dedup_key)))

    def create(
        self, fields: dict[str, str], deliveries: list[dict[str, str]], entry: AuditEntry, *, escalating: bool
    ) -> tuple[int, list[int]]:
        """Store an alert and its deliveries, queue those to send, audit it: all at once."""
        alert_id = int(self._r.incr(self._keys.alert_seq()))
        now = time.time()
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._keys.alert(alert_id), mapping={**fields, "id": str(alert_id), "steps_done": "0"})
        pipe.zadd(self._keys.alerts_index(), {str(alert_id): now})
        if escalating:
            pipe.zadd(self._keys.alerts_escalating(), {str(alert_id): now})
        self._audit.add_to(pipe, entry)
        pipe.execute()
        return alert_id, self.add_deliveries(alert_id, deliveries)

    def add_deliveries(self, alert_id: int, deliveries: list[dict[str, str]]) -> list[int]:
        """Store deliveries of an alert; queue every one whose status is ``queued``."""
        if not deliveries:
            return []
        last = int(self._r.incrby(self._keys.delivery_seq(), len(deliveries)))
        ids = list(range(last - len(deliveries) + 1, last + 1))
        stamp = clock.iso()
        pipe = self._r.pipeline(transaction=True)
        for delivery_id, fields in zip(ids, deliveries, strict=True):
            record = {
                "status": "queued",
                "attempts": "0",
                "created_at": stamp,
                "updated_at": stamp,
                **fields,
                "id": str(delivery_id),
                "alert_id": str(alert_id),
            }
            pipe.hset(self._keys.delivery(delivery_id), mapping=record)
            pipe.rpush(self._keys.alert_deliveries(alert_id), delivery_id)
            if record["status"] == "queued":
                pipe.xadd(self._keys.delivery_queue(), {"delivery_id": delivery_id}, maxlen=100_000)
        pipe.execute()
        return ids

    # --- reading -------------------------------------------------------------------

    def get(self, alert_id: int | str) -> dict[str, Any] | None:
        """Return an alert with its deliveries, or None."""
        return next(iter(self.many([alert_id])), None)

    def fields(self, alert_id: int | str) -> dict[str, str] | None:
        """Return an alert's own fields (not its deliveries), or None."""
        return self._r.hgetall(self._keys.alert(alert_id)) or None

    def recent_fields(self, limit: int) -> list[dict[str, str]]:
        """Return the newest alerts' own fields (not their deliveries)."""
        pipe = self._r.pipeline(transaction=False)
        for alert_id in self._r.zrevrange(self._keys.alerts_index(), 0, limit - 1):
            pipe.hgetall(self._keys.alert(alert_id))
        return [fields for fields in pipe.execute() if fields]

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the newest alerts with their deliveries."""
        return self.many(self._r.zrevrange(self._keys.alerts_index(), 0, limit - 1))

    def many(self, alert_ids: list[int | str]) -> list[dict[str, Any]]:
        """Return these alerts (those that exist) with their deliveries, in the given order."""
        pipe = self._r.pipeline(transaction=False)
        for alert_id in alert_ids:
            pipe.hgetall(self._keys.alert(alert_id))
            pipe.lrange(self._keys.alert_deliveries(alert_id), 0, -1)
        replies = pipe.execute()
        alerts = [(fields, ids) for fields, ids in zip(replies[::2], replies[1::2], strict=True) if fields]
        pipe = self._r.pipeline(transaction=False)
        for _, ids in alerts:
            for delivery_id in ids:
                pipe.hgetall(self._keys.delivery(delivery_id))
        found = iter(pipe.execute())
        return [{**fields, "deliveries": [next(found) for _ in ids]} for fields, ids in alerts]

    def escalating(self) -> list[dict[str, Any]]:
        """Return unacknowledged alerts with escalation steps left, oldest first."""
        return self.many(self._r.zrange(self._keys.alerts_escalating(), 0, 499))

    # --- changing ------------------------------------------------------------------

    def acknowledge(self, alert_id: int | str, username: str, entry: AuditEntry) -> bool:
        """Record who acknowledged an alert first; False when it already was."""
        key = self._keys.alert(alert_id)
        if not self._r.hsetnx(key, "acknowledged_by", username):
            return False
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, "acknowledged_at", clock.iso())
        pipe.zrem(self._keys.alerts_escalating(), alert_id)
        self._audit.add_to(pipe, entry)
        pipe.execute()
        return True

    def took_step(self, alert_id: int | str, steps_done: int, *, last: bool) -> bool:
        """Record that escalation steps up to ``steps_done`` were taken; False if another
        process already did (so a step is taken once)."""
        key = self._keys.alert(alert_id)

        def write(pipe: redis.client.Pipeline) -> bool:
            if int(pipe.hget(key, "steps_done") or 0) >= steps_done:
                return False
            pipe.multi()
            pipe.hset(key, "steps_done", steps_done)
            if last:
                pipe.zrem(self._keys.alerts_escalating(), alert_id)
            return True

        return bool(self._r.transaction(write, key, value_from_callable=True))

    # --- the delivery queue --------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the stream and its consumer group if they are missing."""
        try:
            self._r.xgroup_create(self._keys.delivery_queue(), GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, block_ms: int | None) -> list[tuple[str, str]]:
        """Return new (entry id, delivery id) pairs for this consumer."""
        reply = self._r.xreadgroup(
            GROUP, consumer, {self._keys.delivery_queue(): ">"}, count=count, block=block_ms
        )
        return [
            (entry_id, data.get("delivery_id", ""))
            for _, entries in reply or []
            for entry_id, data in entries
        ]

    def claim_stale(self, consumer: str, idle_ms: int, count: int = 50) -> list[tuple[str, str]]:
        """Take over entries another consumer read but never acknowledged (it died)."""
        reply = self._r.xautoclaim(self._keys.delivery_queue(), GROUP, consumer, idle_ms, "0-0", count=count)
        return [(entry_id, data.get("delivery_id", "")) for entry_id, data in reply[1] if data]

    def done(self, entry_id: str) -> None:
        """Acknowledge a queue entry: its delivery needs nothing more from this read."""
        self._r.xack(self._keys.delivery_queue(), GROUP, entry_id)

    def requeue_due(self, now: float) -> int:
        """Queue again the retries whose time has come; return how many."""
        return int(
            self._requeue_due(keys=[self._keys.delivery_retries(), self._keys.delivery_queue()], args=[now])
        )

    def pending_count(self) -> int:
        """Return how many queue entries are read but not acknowledged."""
        return int(self._r.xpending(self._keys.delivery_queue(), GROUP)["pending"])

    # --- deliveries ------------------------------------------------------------------

    def delivery(self, delivery_id: int | str) -> dict[str, str] | None:
        """Return a delivery's fields, or None."""
        return self._r.hgetall(self._keys.delivery(delivery_id)) or None

    def take(self, delivery_id: int | str, token: str, lease_ms: int, worker: str) -> str | tuple[int, str]:
        """Lease a delivery for ``lease_ms`` and mark an attempt started.

        Returns:
            ``DONE`` (already sent, failed or skipped: nothing to do), ``BUSY`` (another worker
            holds the lease), else (attempt number, the status before this attempt).
        """
        reply = self._take(
            keys=[self._keys.delivery(delivery_id), self._keys.delivery_lease(delivery_id)],
            args=[token, lease_ms, clock.iso(), int(time.time() * 1000), worker],
        )
        if int(reply[0]) == 0:
            return DONE
        if int(reply[0]) < 0:
            return BUSY
        return int(reply[0]), str(reply[1])

    def renew(
        self, delivery_id: int | str, token: str, lease_ms: int, consumer: str = "", entry_id: str = ""
    ) -> bool:
        """Extend a lease held with ``token`` (and keep its queue entry with ``consumer``);
        False when the lease was lost (it lapsed and another worker may have taken it)."""
        return bool(
            self._renew(
                keys=[self._keys.delivery_lease(delivery_id), self._keys.delivery_queue()],
                args=[token, lease_ms, GROUP, consumer, entry_id if consumer else ""],
            )
        )

    def finish(self, delivery_id: int | str, status: str, token: str = "", **fields: str) -> bool:
        """Record a delivery's final status (and the provider's id, so callbacks find it) and
        release its lease; False when the lease was lost (nothing but a sent message's record
        is written then)."""
        kind = "sent" if status in ("sent", "delivered") else "final"
        return self._settled(delivery_id, token, kind, status, "", fields)

    def retry_later(self, delivery_id: int | str, due: float, error: str, token: str = "") -> bool:
        """Park a failed attempt until ``due`` (epoch seconds) and release the lease; False
        (nothing written) when the lease was lost: the worker that took it over decides."""
        fields = {
            "last_error": error[:500],
            "next_attempt_at": clock.iso(datetime.fromtimestamp(due, clock.UTC)),
        }
        return self._settled(delivery_id, token, "retry", "queued", due, fields)

    def _settled(
        self,
        delivery_id: int | str,
        token: str,
        kind: str,
        status: str,
        due: float | str,
        fields: dict[str, str],
    ) -> bool:
        pairs = [
            item for name, value in {**fields, "updated_at": clock.iso()}.items() for item in (name, value)
        ]
        return bool(
            self._settle(
                keys=[
                    self._keys.delivery(delivery_id),
                    self._keys.delivery_lease(delivery_id),
                    self._keys.delivery_retries(),
                    self._keys.delivery_by_provider(),
                ],
                args=[token, kind, status, due, fields.get("provider_id", ""), str(delivery_id), *pairs],
            )
        )

    def by_provider(self, provider_id: str) -> str | None:
        """Return the delivery id a provider message id belongs to."""
        return self._r.hget(self._keys.delivery_by_provider(), provider_id)

    def provider_status(self, delivery_id: int | str, status: str, error: str = "") -> None:
        """Record a status the provider called back with (never moving back from delivered)."""
        key = self._keys.delivery(delivery_id)
        if self._r.hget(key, "status") == "delivered":
            return
        fields = {"status": status, "updated_at": clock.iso()}
        if error:
            fields["last_error"] = error
        self._r.hset(key, mapping=fields)


def as_json(value: Any) -> str:
    """Serialise a trigger's values for the alert record."""
    return json.dumps(value, default=str, sort_keys=True)
