"""Scheduled work that must happen once, whichever process runs it: announcement times,
script expiries and spikes.

An announcement plays from ``starts_at`` and stops at ``ends_at`` by itself (the webhook
compares times); a pass records the start and makes the end *ended*, in the record and the
audit trail, and an approved script whose ``expires_at`` passed is announced as expired.
Those services send their own change signals, so consoles, alerts, the phone line's
fail-safe state and the public channels follow (:mod:`crisis_console.subscribers`). Each
pass also runs spike detection over the last hour and announces each new spike once
(``spike.detected``), then lets the alert rules look at unread pushes and escalations.
Each pass takes a Redis lock, so the web process's own loop and any number of ``worker``
processes can run together safely.

Before each pass, every loop (in each web process and each worker) replays what its host
spooled under ``instance/spool/`` while Redis was down: texts
(:func:`crisis_console.webhooks.sms.replay_spool`) and call counts
(:func:`crisis_console.webhooks.call_counts.replay_calls`); ``serve --only webhooks`` runs
the same replay in each of its workers (:mod:`crisis_console.serving`). That needs no lock:
the spool lets one replayer at a time have each file, each text is stored at most once by
its id and each call is counted at most once by its SID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from redis import RedisError

from crisis_console import clock
from crisis_console.services import spikes, trends
from crisis_console.services.announcements import Announcements
from crisis_console.services.errors import ServiceError
from crisis_console.services.scripts import Scripts
from crisis_console.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

#: Seconds between passes.
INTERVAL = 5


def run_pass(
    store: Store,
    *,
    now: datetime | None = None,
    spiked: Callable[[dict[str, Any]], None] = lambda spike: None,
    tick: Callable[[datetime], Any] = lambda now: None,
) -> list[int]:
    """Start (announce) and end active announcements whose times have come; return the ids ended."""
    if not store.try_lock(store.keys.scheduler_lock(), INTERVAL):
        return []
    now = now or clock.now()
    service = Announcements(store)
    ended: list[int] = []
    for announcement in service.list():
        if announcement.state != "active":
            continue
        due_to_start = announcement.starts_at and not announcement.started_at and announcement.playing(now)
        if due_to_start and service.mark_started(announcement.id, actor="scheduler"):
            handed_over = service.hand_over(announcement.id, actor="scheduler")
            if handed_over is not None:  # the one it follows stops now, not before
                ended.append(handed_over.id)
        if not announcement.ends_at or clock.parse_iso(announcement.ends_at) > now:
            continue
        try:
            done, _ = service.act(announcement.id, "end", actor="scheduler")
        except ServiceError as exc:  # someone ended it meanwhile
            log.info("announcement %s not ended by the scheduler: %s", announcement.id, exc.message)
            continue
        ended.append(done.id)
    Scripts(store).announce_expiries(now)
    for spike in trends.spikes_at(store, window="60m", at=clock.iso(now))["spikes"]:
        if store.complaints.first_sighting(spikes.subject(spike), spike.get("zip", "")):
            spiked(spike)
    tick(now)  # alerts: pushes still unread after their delay, escalation steps due
    return ended


def replay_spooled(store: Store, instance: str | None = None) -> int:
    """Replay what the SMS and voice webhooks spooled during an outage (see the module's
    docstring); return how many records were handled.

    Each spool is tried even if the other fails; the first failure is raised afterwards.
    """
    from crisis_console.app import instance_path
    from crisis_console.webhooks.call_counts import replay_calls
    from crisis_console.webhooks.sms import replay_spool

    folder = instance or instance_path()
    done, failure = 0, None
    for replay in (replay_spool, replay_calls):
        try:
            done += replay(store, folder)
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return done


def loop(store: Store, sleep: Callable[[float], None], **callbacks: Any) -> None:
    """Run passes forever; a Redis outage is logged and retried, never fatal."""
    while True:
        try:
            replay_spooled(store)
        except (RedisError, StoreUnavailable) as exc:
            log.warning("spooled texts and call counts wait, Redis unavailable: %s", exc)
        except Exception:
            # A spool the process cannot read, or a record it cannot apply, must not stop the
            # scheduler: it is logged loudly, kept on disk, and tried again next pass.
            log.exception("spooled texts or call counts not replayed; kept for the next pass")
        try:
            run_pass(store, **callbacks)
        except (RedisError, StoreUnavailable) as exc:
            log.warning("scheduler pass skipped, Redis unavailable: %s", exc)
        sleep(INTERVAL)
