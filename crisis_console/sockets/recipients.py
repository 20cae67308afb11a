"""How many connected agents each push was sent to: the base of its propagation figures.

A push is announced once and delivered by every web process to its own sockets; each process
counts the agent sockets it sent the push to and adds that to the push's record
(``Keys.push`` field ``connected``), so the sum is the deployment's connected audience. The
count is made where python-socketio delivers to local sockets (``Manager.emit``): the
single-process manager, and the queue manager's handling of what it hears.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from socketio.manager import Manager

from crisis_console.sockets import names

log = logging.getLogger(__name__)

#: Adds ``count`` connected recipients to push ``seq`` (``PushRepo.add_connected``).
Record = Callable[[int, int], None]


def push_seq(event: str | None, data: Any, namespace: str | None, room: Any) -> int | None:
    """Return the seq of a ``script.pushed`` broadcast to agent rooms, else None.

    A replay to one socket (addressed to its sid) is not a broadcast and is not counted.
    """
    if event != names.SCRIPT_PUSHED or namespace != names.AGENT:
        return None
    rooms = room if isinstance(room, list) else [room]
    if not rooms or not all(isinstance(r, str) and r.startswith(("role:", "team:")) for r in rooms):
        return None
    body = data[0] if isinstance(data, (list, tuple)) and data else data
    seq = body.get("seq") if isinstance(body, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


class CountingManager(Manager):
    """python-socketio's local delivery, counting each push's recipients on this process.

    Also placed under the queue manager (see :class:`~crisis_console.sockets.healing.HealingRedisManager`),
    whose handling of a queue message ends in this ``emit``.
    """

    record_recipients: Record | None = None

    def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Deliver to this process's sockets (as python-socketio does), counting a push's."""
        target = to or room
        seq = push_seq(event, data, namespace, target) if self.record_recipients else None
        if seq is not None:
            skipped = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
            count = sum(1 for sid, _ in self.get_participants(namespace, target) if sid not in skipped)
            if count:
                self.server.start_background_task(self._record, seq, count)
        return super().emit(
            event, data, namespace, room=target, skip_sid=skip_sid, callback=callback, **kwargs
        )

    def _record(self, seq: int, count: int) -> None:
        try:
            assert self.record_recipients is not None
            self.record_recipients(seq, count)
        except Exception as exc:  # the figures go without this process's share; delivery went on
            log.warning("could not count push %s's %d recipients: %s", seq, count, exc)
