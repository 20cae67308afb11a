"""Call counts that could not be written to Redis, kept on disk until they are.

The phone line counts each call that hears an announcement (``started``) and how it went
on (``outcome``: routed or deflected). When Redis cannot take a count now, the count
waits in two places:

- **in memory**, in the phone path's :class:`~crisis_console.store.breaker.Backlog`: the
  fast path, written by the process itself a moment after Redis answers again;
- **on disk**, in the spool ``instance/spool/calls.jsonl``
  (:mod:`crisis_console.services.spool`): the durable truth, which survives the process
  (``kill -9``, a crash, a redeploy during the outage) and is replayed by the scheduler
  pass of every web process and worker, and by every ``serve --only webhooks`` worker
  (:func:`replay_calls`).

Both apply a count through the same store methods (``call_started`` / ``call_outcome``),
which count a call SID once, so a count written by both, or replayed twice, is counted once.

One line per count::

    {"v": 1, "kind": "started", "call_sid": "CA…", "announcement_id": 7, "line_id": 2,
     "language": "en", "outcome": "", "at": "2026-12-02T06:30:00Z"}
    {"v": 1, "kind": "outcome", "call_sid": "CA…", "outcome": "deflected", "at": "…"}

A call's lines are in the order the webhook took them (its start before its outcome), but
two processes on the host (the start taken by one, the outcome by another) may commit
theirs out of order. An outcome replayed before its call's start is known (the start waits
in a later line, or in another process's memory) is put back in the spool at once, before
its line is marked done, so a crash loses nothing, and is tried again at the end of the
pass; the copy put back is then a repeat (counted once) or, while the start is still
unknown, kept for the next passes, for at most :data:`OUTCOME_PATIENCE` seconds after the
call ended; past that it is logged and dropped.

Writing to disk must not hold up the phone line, and in the gevent web process an
``fsync`` blocks every greenlet (measured here: 2.7–4.1 ms per fsynced append, so 50 calls
a second, 100 counts, would stall the process for a third of each second). So counts go to
a :class:`CountWriter`: the webhook hands its record over and waits at most
``PHONE_SPOOL_WAIT`` seconds (cooperatively) for it to be on disk; one writer at a time
appends everything waiting in one write and one ``fsync`` (a group commit), off the event
loop (gevent's thread pool) in the gevent web process, in the writer's own thread under
gunicorn. At most :data:`PENDING_LIMIT` records wait for the disk; if the disk cannot be
written the error is logged and the count stays in memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from crisis_console import clock
from crisis_console.services.spool import Spool
from crisis_console.sockets import realtime
from crisis_console.store import Store

log = logging.getLogger(__name__)

SPOOL_FOLDER = "spool"
SPOOL_NAME = "calls"
#: Seconds a webhook waits, at most, for its count to be on disk (usually one fsync).
SPOOL_WAIT = 0.2
#: Records that may wait for the disk at once; past that new ones stay in memory only.
PENDING_LIMIT = 10_000
#: Records written at most in one group commit.
BATCH = 1_000
#: Replay makes its progress durable (fsync) every this many lines: a count replayed again
#: after a crash is counted once anyway, and one fsync per line would stall the gevent loop.
REPLAY_SYNC_EVERY = 200
#: Seconds an outcome whose call's start is unknown is kept for its start to arrive.
OUTCOME_PATIENCE = 600


def calls_spool(instance: str | Path) -> Spool:
    """Return the spool of call counts taken while Redis was down, under ``instance``."""
    return Spool(Path(instance) / SPOOL_FOLDER, SPOOL_NAME)


def started_record(call_sid: str, announcement_id: int, line_id: int, language: str) -> dict[str, Any]:
    """Return the spool line of a call that heard an announcement."""
    return {
        "v": 1,
        "kind": "started",
        "call_sid": call_sid,
        "announcement_id": announcement_id,
        "line_id": line_id,
        "language": language,
        "outcome": "",
        "at": clock.iso(clock.now()),
    }


def outcome_record(call_sid: str, outcome: str) -> dict[str, Any]:
    """Return the spool line of how a call went on (routed or deflected)."""
    return {"v": 1, "kind": "outcome", "call_sid": call_sid, "outcome": outcome, "at": clock.iso(clock.now())}


def _offload() -> Callable[[Callable[[], None]], None]:
    """Return how to run a blocking disk write: in gevent's thread pool when the process is
    monkey-patched (an fsync would stop every greenlet), else right here (a real thread)."""
    try:
        from gevent import get_hub, monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return lambda work: work()
    if not monkey.is_module_patched("threading"):
        return lambda work: work()
    return lambda work: get_hub().threadpool.apply(work)


class _Commit:
    """One group commit: ``done`` is set once its records were written (``ok``) or could not be."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.failed = False  # one of its batches could not be written
        self.ok = False


class CountWriter:
    """Appends records to a spool in group commits, without holding up the caller for long."""

    def __init__(self, spool: Spool, wait: float = SPOOL_WAIT, limit: int = PENDING_LIMIT):
        self.spool = spool
        self.wait = wait
        self.limit = limit
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._commit = _Commit()
        self._writing = False
        #: Records written, and records not written (the disk failed or too many waited).
        self.written = 0
        self.lost = 0

    def submit(self, record: dict[str, Any]) -> bool:
        """Hand ``record`` to the writer and wait up to ``wait`` seconds for it to be on disk;
        return True when it is (False: it may still be written, or was not: logged)."""
        with self._lock:
            if len(self._pending) >= self.limit:
                self.lost += 1
                if self.lost == 1 or self.lost % 1000 == 0:
                    log.error(
                        "%s: %d records wait for the disk; %d not spooled",
                        self.spool.path,
                        self.limit,
                        self.lost,
                    )
                return False
            self._pending.append(record)
            commit = self._commit
            if not self._writing:
                self._writing = True
                threading.Thread(target=self._write, daemon=True, name="call-count-spool").start()
        return commit.done.wait(self.wait) and commit.ok

    def idle(self) -> bool:
        """Return True when nothing waits for the disk."""
        with self._lock:
            return not self._writing and not self._pending

    def _write(self) -> None:
        """Write what waits, in group commits, until nothing does."""
        offload = _offload()
        while True:
            with self._lock:
                if not self._pending:
                    self._writing = False
                    return
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                last = not self._pending
                commit = self._commit
                if last:  # records handed over from now on wait for the next commit
                    self._commit = _Commit()
            try:
                offload(lambda batch=batch: self.spool.append_many(batch))
            except Exception as exc:  # a full or read-only disk: the counts stay in memory
                with self._lock:
                    self.lost += len(batch)
                    commit.failed = True
                log.error("could not spool %d call counts to %s: %s", len(batch), self.spool.path, exc)
            else:
                with self._lock:
                    self.written += len(batch)
            if last:
                commit.ok = not commit.failed
                commit.done.set()


def replay_calls(store: Store, instance: str | Path) -> int:
    """Apply the call counts spooled under ``instance`` while Redis was down; return how many
    lines were handled.

    Runs in the scheduler pass of every web process and worker and in each webhooks-only
    worker; any number may run at once (see :mod:`crisis_console.services.spool`). Raises
    the store's error if Redis fails again (the rest waits for the next pass).
    """
    spool = calls_spool(instance)
    changed: set[int] = set()
    early: list[dict[str, Any]] = []

    def handle(record: dict[str, Any]) -> None:
        if not apply_count(store, record, changed):
            early.append(record)
            keep_for_later(spool, record)

    done = spool.replay(handle, sync_every=REPLAY_SYNC_EVERY)
    for record in early:  # its start may have come later in the same pass
        apply_count(store, record, changed)
    for announcement_id in changed:
        realtime.announcement_stats_soon(store, announcement_id)
    if done:
        log.info("replayed %d spooled call counts (%d announcements changed)", done, len(changed))
    return done


def apply_count(store: Store, record: dict[str, Any], changed: set[int]) -> bool:
    """Apply one spooled count (once per call, whoever else wrote it); return False only for
    an outcome whose call's start is not known yet. Adds the announcement whose statistics
    changed to ``changed``."""
    call_sid = str(record.get("call_sid") or "")
    if not call_sid:
        log.error("spooled call count without a call SID was skipped: %r", record)
        return True
    announcements = store.announcements
    if record.get("kind") == "started":
        try:
            announcement_id = int(record["announcement_id"])
        except (KeyError, TypeError, ValueError):
            log.error("spooled call %s names no announcement and was skipped", call_sid)
            return True
        line_id = record.get("line_id") or ""
        if announcements.call_started(call_sid, announcement_id, line_id, str(record.get("language") or "")):
            changed.add(announcement_id)
        return True
    if record.get("kind") != "outcome" or record.get("outcome") not in ("routed", "deflected"):
        log.error("spooled call count of an unknown kind was skipped: %r", record)
        return True
    call = announcements.call(call_sid)
    if not call.get("announcement_id"):
        return False
    if announcements.call_outcome(call_sid, str(record["outcome"])):
        changed.add(int(call["announcement_id"]))
    return True


def keep_for_later(spool: Spool, record: dict[str, Any]) -> None:
    """Put an outcome whose call's start is unknown back in the spool (durably, before the
    line it came from is marked done), unless it has waited long enough."""
    try:
        taken = clock.parse_iso(str(record.get("at") or ""))
    except ValueError:
        taken = None
    if taken is None or clock.now() - taken > timedelta(seconds=OUTCOME_PATIENCE):
        log.error(
            "spooled outcome of call %s dropped: the call's start never reached Redis", record.get("call_sid")
        )
        return
    spool.append(record)
