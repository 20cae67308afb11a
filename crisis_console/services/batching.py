"""Writes gathered in memory and sent to Redis in batches, by one task that runs while any wait.

What a thousand agents do at the same moment (receive a push, lose the network) must not
become a thousand writes, each queued on the connection pool: it is noted in memory and
written with the others every ``interval`` at most, in one round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class BatchWriter:
    """The writer task of a batch: subclasses note work under ``_lock``, start the task with
    ``_spawn(_write_while_waiting)`` when :meth:`_started_writer` says so, and write the work
    in :meth:`flush`; :meth:`_waiting` says (under the lock) whether any is left.

    ``spawn`` starts a task (a greenlet under gevent), ``sleep`` waits in one. One writer
    task runs while work waits and ends when none does, so an idle process (or a test's app)
    keeps no task alive.
    """

    def __init__(
        self,
        *,
        spawn: Callable[[Callable[[], None]], Any],
        sleep: Callable[[float], None],
        interval: float,
    ) -> None:
        self._spawn = spawn
        self._sleep = sleep
        self._interval = interval
        self._lock = threading.Lock()
        self._writing = False
        #: The last write was refused (log the first refusal of a run only).
        self._failing = False

    def _started_writer(self) -> bool:
        """Call with the lock held after noting work: True if a writer task must be started."""
        if self._writing:
            return False
        self._writing = True
        return True

    def _write_while_waiting(self) -> None:
        while True:
            self._sleep(self._interval)
            self.flush()
            with self._lock:
                if not self._waiting():
                    self._writing = False
                    return

    def _waiting(self) -> bool:
        raise NotImplementedError

    def flush(self) -> Any:
        """Write what waits now."""
        raise NotImplementedError
