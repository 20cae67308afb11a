"""Closed connections, forgotten in Redis together rather than one by one.

When a network blip, a proxy reload or the end of a shift closes thousands of agent sockets
at once, a write per disconnect queued thousands of tasks on the connection pool: they waited
past its timeout, failed, and starved everything else that needed Redis meanwhile (alert
delivery, the scheduler, the phone line's own reads). Here a disconnect is noted in memory
and the notes are written in one pipelined round trip every :data:`INTERVAL` at most.

A note that waits costs nothing: a sign-out that reads a just-closed connection tries to close
it and finds it gone. If Redis refuses a batch, the notes wait for the next one; if the process
dies first, the records expire with the user's socket list (``SOCKETS_TTL``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis import RedisError

from crisis_console.services.batching import BatchWriter
from crisis_console.store import Store

log = logging.getLogger(__name__)

#: Seconds at most between a disconnect and its write.
INTERVAL = 0.25


class Departures(BatchWriter):
    """Gathers closed connections ``(user id, namespace, sid)`` and forgets them in batches."""

    def __init__(
        self,
        store: Store,
        *,
        spawn: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
        interval: float = INTERVAL,
    ) -> None:
        super().__init__(spawn=spawn, sleep=sleep, interval=interval)
        self._store = store
        self._gone: list[tuple[str, str, str]] = []

    def add(self, user_id: int | str, namespace: str, sid: str) -> None:
        """Note that a connection closed."""
        with self._lock:
            self._gone.append((str(user_id), namespace, sid))
            start = self._started_writer()
        if start:
            self._spawn(self._write_while_waiting)

    def pending(self) -> int:
        """Return how many closed connections wait to be forgotten."""
        with self._lock:
            return len(self._gone)

    def _waiting(self) -> bool:
        return bool(self._gone)

    def flush(self) -> int:
        """Forget the noted connections now; return how many (0 when Redis refused them)."""
        with self._lock:
            gone, self._gone = self._gone, []
        if not gone:
            return 0
        try:
            self._store.sockets.remove_many(gone)
        except RedisError as exc:
            if not self._failing:
                log.warning("could not forget %d closed connections yet: %s", len(gone), exc)
            self._failing = True
            with self._lock:
                self._gone[:0] = gone
            return 0
        self._failing = False
        return len(gone)
