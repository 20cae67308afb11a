"""Short deadlines for the paths that must never wait on Redis: a circuit breaker, a client
that goes through it, and a bounded backlog of writes replayed when Redis is back.

The phone line answers Twilio within a second whatever Redis does. Its Redis client has
socket deadlines of a few hundred milliseconds and goes through a :class:`Breaker`:

- **closed**: commands run; a connection error or timeout opens the breaker;
- **open**: for ``open_seconds`` every command fails at once with :class:`CircuitOpen`
  (a ``RedisError``, so callers' fallbacks take it), and calls answer from the last known
  state without touching the network;
- **half-open**: after that, one command at a time is let through as a trial; success
  closes the breaker, failure opens it again.

Writes that may wait (counting a call) go to a :class:`Backlog`: written at once when the
breaker is closed, else kept in memory (bounded) and replayed in order by a background
thread once Redis answers. Each write must be idempotent: one that timed out may have
reached Redis and is replayed anyway.

A request may also set a budget (:func:`budget`): once spent, further commands on a
guarded client fail at once, so a request that meets a slow Redis cannot add up many
short deadlines.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

#: Errors that mean Redis did not answer in time or cannot serve: they open the breaker.
#: (Other errors, a NOSCRIPT or a wrong type, are answers: Redis is there.)
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


class CircuitOpen(redis.ConnectionError):
    """Redis failed a moment ago: the command was not sent (answer from what is known)."""


class BudgetSpent(redis.TimeoutError):
    """The request has spent its Redis budget: the command was not sent."""


class Breaker:
    """A circuit breaker over one Redis client (thread- and greenlet-safe)."""

    def __init__(self, name: str, open_seconds: float = 3.0, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._opened_at = 0.0
        self._trial = False
        #: How many times the breaker opened from closed (for tests and benchmarks).
        self.openings = 0

    @property
    def state(self) -> str:
        """Return ``closed``, ``open`` or ``half-open`` (open turns half-open once its time is up)."""
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.open_seconds:
                return HALF_OPEN
            return self._state

    def retry_in(self) -> float:
        """Return the seconds until a trial may be made (0 when one may be made now)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self.open_seconds - (self._clock() - self._opened_at))

    def before(self) -> None:
        """Let a command through, or raise :class:`CircuitOpen`."""
        with self._lock:
            if self._state == CLOSED:
                return
            if self._state == OPEN:
                if self._clock() - self._opened_at < self.open_seconds:
                    raise CircuitOpen(f"Redis ({self.name}) failed recently; not trying for a moment")
                self._state = HALF_OPEN
                self._trial = False
            if self._trial:  # half-open: one trial at a time
                raise CircuitOpen(f"Redis ({self.name}) is being retried")
            self._trial = True

    def succeeded(self) -> None:
        """Record an answer from Redis: the breaker closes."""
        with self._lock:
            if self._state != CLOSED:
                log.warning("Redis (%s) answers again: circuit closed", self.name)
            self._state = CLOSED
            self._trial = False

    def release(self) -> None:
        """Give back a trial that learnt nothing (the command was interrupted)."""
        with self._lock:
            self._trial = False

    def failed(self, exc: BaseException) -> None:
        """Record a failure: the breaker opens (again) for ``open_seconds``."""
        with self._lock:
            if self._state == CLOSED:
                self.openings += 1
                log.error(
                    "Redis (%s) failed: %s; answering without it for %.1f s",
                    self.name,
                    exc,
                    self.open_seconds,
                )
            elif self._state == HALF_OPEN:
                log.warning("Redis (%s) still failing: %s", self.name, exc)
            self._state = OPEN
            self._opened_at = self._clock()
            self._trial = False


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("redis_deadline", default=None)


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Let the commands run inside this block spend at most ``seconds`` on guarded clients."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


class GuardedRedis(redis.Redis):
    """A Redis client whose every command goes through a :class:`Breaker` (and the budget).

    Only single commands (and Lua scripts) are guarded: the paths that use this client
    send no pipelines.
    """

    def __init__(self, *args: Any, breaker: Breaker, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.breaker = breaker

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run a command unless the breaker is open or the request's budget is spent."""
        deadline = _deadline.get()
        if deadline is not None and time.monotonic() >= deadline:
            raise BudgetSpent("the request's Redis budget is spent")
        self.breaker.before()
        try:
            result = super().execute_command(*args, **options)
        except UNAVAILABLE as exc:
            self.breaker.failed(exc)
            raise
        except redis.RedisError:
            self.breaker.succeeded()  # Redis answered, with an error of the command's own
            raise
        except BaseException:
            self.breaker.release()  # interrupted (a timeout of the caller's): nothing learnt
            raise
        self.breaker.succeeded()
        return result


class Backlog:
    """Idempotent writes kept in order while Redis is away, and written when it is back.

    ``submit`` writes at once unless a write with the same ``key`` (a call's SID: its start
    must be counted before its outcome) is already waiting; if the write fails it is queued,
    and a background thread replays the queue in order as soon as the breaker lets a trial
    through. Writes without a key wait behind everything queued. At most ``limit`` writes
    wait; past that new ones are dropped, counted and logged.
    """

    def __init__(self, breaker: Breaker, name: str, limit: int = 100_000):
        self.breaker = breaker
        self.name = name
        self.limit = limit
        self._queue: collections.deque[tuple[str | None, Callable[[], Any]]] = collections.deque()
        self._waiting: collections.Counter[str | None] = collections.Counter()
        self._lock = threading.Lock()
        self._draining = False
        #: Writes dropped because the backlog was full.
        self.dropped = 0
        #: Writes that waited and were written later.
        self.replayed = 0

    def __len__(self) -> int:
        return len(self._queue)

    def submit(self, write: Callable[[], Any], key: str | None = None) -> bool:
        """Write now if possible, else queue; return True when written now."""
        with self._lock:
            behind = bool(self._queue) if key is None else self._waiting[key] > 0
        if not behind:
            try:
                write()
                return True
            except redis.RedisError as exc:
                if not isinstance(exc, (*UNAVAILABLE, BudgetSpent)):
                    raise
        with self._lock:
            if len(self._queue) >= self.limit:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.error(
                        "%s backlog full (%d waiting): %d writes dropped", self.name, self.limit, self.dropped
                    )
                return False
            self._queue.append((key, write))
            self._waiting[key] += 1
            if not self._draining:
                self._draining = True
                threading.Thread(target=self._drain, daemon=True, name=f"{self.name}-backlog").start()
        return False

    def _drain(self) -> None:
        """Replay the queue in order until it is empty, waiting out the breaker."""
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._draining = False
                        log.warning("%s backlog written: %d writes replayed so far", self.name, self.replayed)
                        return
                    key, write = self._queue[0]
                try:
                    write()
                except (*UNAVAILABLE, BudgetSpent):
                    time.sleep(max(0.05, min(self.breaker.retry_in(), 1.0)))
                    continue
                except Exception:  # a write that can never succeed must not block the others
                    log.exception("%s backlog: a queued write failed and is dropped", self.name)
                else:
                    self.replayed += 1
                with self._lock:
                    self._queue.popleft()
                    self._waiting[key] -= 1
                    if not self._waiting[key]:
                        del self._waiting[key]
        except BaseException:
            with self._lock:
                self._draining = False
            raise
