"""Receipts: "this page now shows push N", gathered in memory and written in batches.

A push to thousands of agents brings thousands of receipts within a second or two. Written
one by one (a Lua call each, in a task of its own) they cost more server CPU than delivering
the push. Here a receipt costs a dictionary insert: the marks of every push are written
together, in one pipelined round trip, every :data:`FLUSH_INTERVAL` at most.

What a crash can cost: the marks of the last interval, which only feed the "received" count
and the propagation times. Acknowledgements ("Got it") are not gathered here: each is written
at once and confirmed to the page, which retries until then (see :meth:`Pushes.receipt`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis import RedisError

from crisis_console.services.batching import BatchWriter
from crisis_console.store import Store

log = logging.getLogger(__name__)

#: Seconds at most between a receipt and its write.
FLUSH_INTERVAL = 0.25


def push_number(value: Any) -> int | None:
    """Return ``value`` as a push id (a positive whole number, or its digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value) or None
    return None


def now_ms() -> int:
    """Return the server's time in ms since the epoch (what receipts are stamped with)."""
    return time.time_ns() // 1_000_000


class ReceiptBatcher(BatchWriter):
    """Gathers "received" marks and writes them every :data:`FLUSH_INTERVAL` at most.

    ``report`` is given each push's progress after a write (``push_id``, ``delivered``,
    ``acknowledged``, ``audience_size``).
    """

    def __init__(
        self,
        store: Store,
        *,
        report: Callable[[dict[str, Any]], None],
        spawn: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        super().__init__(spawn=spawn, sleep=sleep, interval=interval)
        self._store = store
        self._report = report
        self._marks: dict[int, dict[str, int]] = {}

    def add(self, push_id: int, user_id: str, at_ms: int | None = None) -> None:
        """Note that ``user_id``'s page received ``push_id`` (now, or ``at_ms``)."""
        at = now_ms() if at_ms is None else at_ms
        with self._lock:
            users = self._marks.get(push_id)
            if users is None:
                users = self._marks[push_id] = {}
            users.setdefault(user_id, at)
            start = self._started_writer()
        if start:
            self._spawn(self._write_while_waiting)

    def pending(self) -> int:
        """Return how many marks wait to be written."""
        with self._lock:
            return sum(len(users) for users in self._marks.values())

    def _waiting(self) -> bool:
        return bool(self._marks)

    def flush(self) -> list[dict[str, Any]]:
        """Write the waiting marks now; return the progress of each push written.

        If Redis cannot take them, they wait for the next write (the earliest time of each
        mark is kept), so a short outage loses none.
        """
        with self._lock:
            marks, self._marks = self._marks, {}
        if not marks:
            return []
        try:
            counts = self._store.pushes.record_received(marks)
        except RedisError as exc:
            with self._lock:
                for push_id, users in marks.items():
                    waiting = self._marks.setdefault(push_id, {})
                    for user, at in users.items():
                        waiting[user] = min(at, waiting.get(user, at))
            if not self._failing:
                log.warning("receipts: Redis refused a batch, keeping it for the next write: %s", exc)
            self._failing = True
            return []
        if self._failing:
            log.warning("receipts: written again")
        self._failing = False
        progress = [
            {"push_id": push_id, "delivered": delivered, "acknowledged": acked, "audience_size": size}
            for push_id, (delivered, acked, size) in counts.items()
        ]
        for item in progress:
            self._report(item)
        return progress
