"""The message-queue manager that heals pushes a web process missed, from Redis, by sequence.

The Socket.IO message queue is Redis pub/sub: what is published while a process's listener
is cut off (Redis restarted, the connection dropped, the listener backing off) never reaches
that process, and its agents stay connected, so replay-on-reconnect never runs for them.
Every push has a gap-free, deployment-wide sequence and is stored before it is announced, so
this manager keeps, per process, the highest seq up to which it has delivered every push
(``through``) and, when it notices it may have missed some, reads them back from the push
records and delivers them to its own sockets only:

- when its listener subscribes again after a connection error (subscribing first, then
  reading, so nothing published in between falls through);
- when a push arrives more than one ahead of ``through`` and the hole is still open a
  moment later (a publish that failed on another process);
- every ``CHECK_INTERVAL`` seconds, when the store's newest seq is past ``through`` (the
  last push of a burst was the one lost).

Each socket gets only what it lacks: a push this process already delivered is never sent
again (a late pub/sub copy of a healed push is dropped), and a socket that connected after
a push (and had it replayed by its handshake's ``last_seq``) is skipped. Pages still
deduplicate by ``push_id`` and heal gaps themselves; this makes agents whole without waiting
for their 30-second check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import socketio as python_socketio

from crisis_console.sockets import names
from crisis_console.sockets.recipients import CountingManager, push_seq

log = logging.getLogger(__name__)

#: First and longest wait between attempts to resubscribe (python-socketio grows it to 60 s).
RETRY_FIRST = 0.2
RETRY_MAX = 2.0
#: Seconds a hole in the sequence may stay open (a push in flight) before it is healed.
GAP_GRACE = 1.0
#: Seconds between checks of the store's newest seq against what this process delivered.
CHECK_INTERVAL = 10.0
#: Seconds a push's local delivery waits for the call that made it to answer.
AFTER_CALLER = 0.002
#: Seqs kept in memory below ``through`` (to drop late duplicates).
REMEMBERED = 1000

#: Returns the store's newest push seq.
LastSeq = Callable[[], int]
#: Returns ``(script.pushed message, audience)`` of every push after a seq, oldest first.
PublishedAfter = Callable[[int], list[tuple[dict[str, Any], Any]]]
#: Returns the rooms of an audience (``realtime.push_rooms``).
Rooms = Callable[[Any], Any]


class _ResubscribingPubSub(redis.client.PubSub):
    """A redis-py PubSub that says when it resubscribed by itself after a lost connection.

    redis-py reconnects and resubscribes inside a read when it can (its retries), so the
    listener sees no error although messages published meanwhile are gone.
    """

    on_resubscribed: Callable[[], None] | None = None

    def on_connect(self, connection: Any) -> None:
        """Resubscribe, then report it (only reconnections call this: the first connection
        is made before the callback is registered)."""
        super().on_connect(connection)
        if self.on_resubscribed is not None and (self.channels or self.patterns):
            self.on_resubscribed()


class HealingRedisManager(python_socketio.RedisManager, CountingManager):
    """A ``RedisManager`` that re-delivers, from the push records, the pushes its listener missed."""

    def __init__(
        self,
        url: str,
        *,
        channel: str,
        last_seq: LastSeq,
        reachable: Callable[[int], int],
        published_after: PublishedAfter,
        rooms: Rooms,
        check_interval: float = CHECK_INTERVAL,
    ):
        super().__init__(url, channel=channel, write_only=False)
        self._last_seq = last_seq
        self._reachable = reachable
        self._published_after = published_after
        self._rooms = rooms
        self._check_interval = check_interval
        #: Every push with seq <= through was delivered by this process (None: not known yet).
        self.through: int | None = None
        #: Seqs above ``through - REMEMBERED`` this process delivered.
        self.delivered: set[int] = set()
        #: sid -> the seq its handshake caught it up to (replayed from ``last_seq``).
        self.caught_up: dict[str, int] = {}
        #: Healings done (a test and the log read it).
        self.heals = 0
        self._healing = False
        self._heal_again = False

    # --- the listener ------------------------------------------------------------------

    def _redis_connect(self) -> None:
        """Connect as python-socketio does, with a PubSub that reports its own reconnections."""
        super()._redis_connect()
        pubsub = _ResubscribingPubSub(
            self.redis.connection_pool,
            ignore_subscribe_messages=True,
            event_dispatcher=getattr(self.redis, "_event_dispatcher", None),
        )
        pubsub.on_resubscribed = self._resubscribed
        self.pubsub = pubsub

    def _resubscribed(self) -> None:
        self.server.start_background_task(self.heal, "resubscribed")

    def initialize(self) -> None:
        """Start the listener and the periodic check."""
        super().initialize()
        self.server.start_background_task(self._check_forever)

    def _redis_listen_with_retries(self) -> Iterator[dict[str, Any]]:
        """Listen on the channel; after each reconnection, heal what was published meanwhile."""
        retry_sleep = RETRY_FIRST
        cut_off = False
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                retry_sleep = RETRY_FIRST
                if cut_off or self.through is None:
                    # Subscribed first: what is published from now on comes by pub/sub; what
                    # came before is in Redis. Healed in its own task, so listening goes on.
                    self.server.start_background_task(self.heal, "reconnected" if cut_off else "started")
                cut_off = False
                yield from self.pubsub.listen()
            except Exception as exc:
                cut_off = True
                self._get_logger().error(
                    "Cannot receive from redis... retrying in %s secs (missed pushes will be healed)",
                    retry_sleep,
                    extra={"redis_exception": str(exc)},
                )
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, RETRY_MAX)

    def _check_forever(self) -> None:
        """Every ``check_interval``, heal if the store knows a push this process has not delivered."""
        while True:
            self.server.sleep(self._check_interval)
            try:
                behind = self.through is None or self._last_seq() > self.through
            except Exception as exc:  # the store is down: the reconnection will heal
                log.info("push check skipped: %s", exc)
                continue
            if behind:
                self.heal("behind")

    # --- deliveries -----------------------------------------------------------------------

    def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Send a message to every process's sockets; a push goes to the queue first.

        python-socketio delivers to this process's own sockets first, in the caller, and only
        then publishes: the other processes' agents waited behind this one's, and the push API
        behind every local send. A push is published at once and delivered here in a task of
        its own, a moment (``AFTER_CALLER``) later, so each process's share starts together and
        the API answers without waiting for this process's sockets.
        """
        target = to or room
        if (
            kwargs.get("ignore_queue")
            or callback is not None
            or push_seq(event, data, namespace, target) is None
        ):
            return super().emit(
                event,
                data,
                namespace=namespace,
                room=room,
                skip_sid=skip_sid,
                callback=callback,
                to=to,
                **kwargs,
            )
        message = {
            "method": "emit",
            "event": event,
            "data": [data],
            "binary": False,
            "namespace": namespace,
            "room": target,
            "skip_sid": skip_sid,
            "callback": None,
            "host_id": self.host_id,
        }
        try:
            self._publish(message)
        finally:  # this process's agents get it even if the queue refused it (the others heal)
            self.server.start_background_task(self._deliver_after_caller, message)
        return None

    def _deliver_after_caller(self, message: dict[str, Any]) -> None:
        """Deliver a push here once the caller (the push API's request) has had a moment to
        answer: gevent runs every socket's writer before it looks at the request's I/O again."""
        self.server.sleep(AFTER_CALLER)
        self._handle_emit(message)

    @staticmethod
    def _push_seq(message: dict[str, Any]) -> int | None:
        """Return the seq of a broadcast ``script.pushed`` queue message, else None.

        Replays to one socket (a handshake's ``last_seq``) are addressed to its sid and are
        not counted: they say nothing about what the process's other sockets have.
        """
        return push_seq(
            message.get("event"), message.get("data"), message.get("namespace"), message.get("room")
        )

    def _handle_emit(self, message: dict[str, Any]) -> None:
        """Deliver a message to this process's sockets; drop a push already delivered."""
        seq = self._push_seq(message)
        if seq is None:
            return super()._handle_emit(message)
        if seq in self.delivered:
            return None
        self._mark(seq)
        super()._handle_emit(message)
        if self.through is not None and seq > self.through + 1:
            self.server.start_background_task(self._heal_if_still_missing, seq)
        return None

    def _mark(self, seq: int) -> None:
        """Remember a delivered seq and move ``through`` over every contiguous one."""
        self.delivered.add(seq)
        if self.through is None:
            return
        while self.through + 1 in self.delivered:
            self.through += 1
        if len(self.delivered) > 2 * REMEMBERED:
            floor = self.through - REMEMBERED
            self.delivered = {s for s in self.delivered if s > floor}

    def _heal_if_still_missing(self, seq: int) -> None:
        self.server.sleep(GAP_GRACE)
        if self.through is not None and self.through < seq - 1:
            self.heal("gap")

    def socket_caught_up(self, sid: str, seq: int) -> None:
        """Note that a socket's handshake replayed every push up to ``seq`` to it."""
        self.caught_up[sid] = seq

    def socket_gone(self, sid: str) -> None:
        """Forget a closed socket."""
        self.caught_up.pop(sid, None)

    def heal(self, why: str) -> None:
        """Deliver to this process's sockets every stored push it has not delivered yet.

        Retries while the store is still coming back (a restarted Redis loading its data);
        one healing runs at a time, and a request during it runs it once more afterwards.
        """
        if self._healing:
            self._heal_again = True
            return
        self._healing = True
        try:
            wait = RETRY_FIRST
            while True:
                self._heal_again = False
                try:
                    self._heal_once(why)
                except Exception as exc:
                    log.warning("healing pushes (%s) failed, retrying in %s s: %s", why, wait, exc)
                    self.server.sleep(wait)
                    wait = min(wait * 2, RETRY_MAX)
                    continue
                if not self._heal_again:
                    return
        finally:
            self._healing = False

    def _heal_once(self, why: str) -> None:
        if self.through is None:
            # Before this process's first subscription there were no sockets to deliver to.
            self.through = self._last_seq()
            self._mark(self.through)
            return
        start = self.through
        # Read at most one page; a longer outage heals page by page (``_heal_again``).
        newest = self._reachable(start)
        if newest < self._last_seq():
            self._heal_again = True
        healed = 0
        for message, audience in self._published_after(start):
            seq = message["seq"]
            if seq > newest or seq in self.delivered:
                continue
            self.delivered.add(seq)
            skip = [sid for sid, known in self.caught_up.items() if known >= seq]
            CountingManager.emit(  # to this process's sockets, not the queue
                self,
                names.SCRIPT_PUSHED,
                message,
                namespace=names.AGENT,
                room=self._rooms(audience),
                skip_sid=skip,
            )
            healed += 1
        # Every seq up to ``newest`` is stored, so those not delivered now were retired
        # (nothing to show) or for nobody here: the process is whole up to ``newest``.
        self.through = max(self.through, newest)
        self._mark(self.through)
        self.caught_up = {sid: known for sid, known in self.caught_up.items() if known > self.through}
        if healed:
            self.heals += 1
            log.warning("healed %d push(es) after seq %d (%s)", healed, start, why)
