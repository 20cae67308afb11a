"""Voice webhooks: answer a call, take the caller's key, count how the call ended.

Every answer is TwiML from the SDK. If Redis cannot be reached, the line answers from the
last known state (memory, then ``instance/ivr-state.json``), and if nothing is known, with
a polite message: never an error page.

The phone path never waits on Redis: it has a client of its own with deadlines of a few
hundred milliseconds behind a circuit breaker (:mod:`crisis_console.store.breaker`), each
request may spend at most ``REDIS_BUDGET`` seconds on Redis. Counting a call is a write
that, while Redis is away, waits in memory (written by this process once Redis is back)
and on disk in ``instance/spool/calls.jsonl`` (replayed by any process on the host, so the
count survives this process dying during the outage): see
:mod:`crisis_console.webhooks.call_counts`. Writing it there waits at most
``PHONE_SPOOL_WAIT`` seconds, cooperatively; a disk that cannot be written is logged and
the count stays in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, request
from redis import RedisError
from twilio.twiml.voice_response import VoiceResponse

from crisis_console.extensions import STORE_EXTENSION, store
from crisis_console.services import callflow
from crisis_console.services.announcements import Announcement
from crisis_console.services.ivr_state import LastKnownState
from crisis_console.services.lines import Line
from crisis_console.sockets import realtime
from crisis_console.store import Store, phone_client
from crisis_console.store.breaker import Backlog, Breaker, CircuitOpen, budget
from crisis_console.store.connection import PHONE_SOCKET_TIMEOUT
from crisis_console.webhooks import bp
from crisis_console.webhooks.call_counts import (
    SPOOL_WAIT,
    CountWriter,
    calls_spool,
    outcome_record,
    started_record,
)
from crisis_console.webhooks.signature import twilio_signed

IVR_STATE = "crisis_console.ivr_state"
PHONE = "crisis_console.phone"
#: Seconds one webhook may spend waiting on Redis in all (each command has its own shorter
#: deadline); past it the answer comes from the last known state. Twilio waits 15 s; the
#: line's target is an answer within 1 s.
REDIS_BUDGET = 0.5
#: Seconds the breaker stays open after a failure before one call tries Redis again.
BREAKER_SECONDS = 3.0
#: Call statuses that mean the call is over.
FINAL_STATUSES = frozenset({"completed", "canceled", "busy", "failed", "no-answer"})
log = logging.getLogger(__name__)


@dataclass
class Phone:
    """The phone path's own way to Redis: a short-deadline store, its breaker, the backlog
    of counts waiting for Redis in memory, and the writer of their copies on disk."""

    store: Store
    breaker: Breaker
    counts: Backlog
    spool: CountWriter


def init_phone(app: Flask) -> None:
    """Give the app the phone path's store (after the main store: same server and prefix)."""
    main: Store = app.extensions[STORE_EXTENSION]
    breaker = Breaker("phone line", open_seconds=app.config.get("PHONE_BREAKER_SECONDS", BREAKER_SECONDS))
    app.extensions[PHONE] = Phone(
        store=Store(
            phone_client(
                main.redis,
                breaker,
                socket_timeout=app.config.get("PHONE_SOCKET_TIMEOUT", PHONE_SOCKET_TIMEOUT),
            ),
            main.keys.prefix,
        ),
        breaker=breaker,
        counts=Backlog(breaker, "call counting"),
        spool=CountWriter(
            calls_spool(app.instance_path), wait=app.config.get("PHONE_SPOOL_WAIT", SPOOL_WAIT)
        ),
    )


def phone() -> Phone:
    """Return the current app's phone path."""
    return current_app.extensions[PHONE]


def within_budget(view: Any) -> Any:
    """Let the view spend at most ``REDIS_BUDGET`` seconds on the phone store."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with budget(current_app.config.get("PHONE_REDIS_BUDGET", REDIS_BUDGET)):
            return view(*args, **kwargs)

    return wrapped


def last_known() -> LastKnownState:
    """Return the app's last-known phone-line state."""
    return current_app.extensions[IVR_STATE]


def twiml(response: VoiceResponse) -> Response:
    """Return TwiML with the content type Twilio expects."""
    return Response(str(response), mimetype="text/xml")


def find(number: str) -> tuple[Line | None, Announcement | None]:
    """Return the called line and its current announcement, from Redis or the last known state."""
    try:
        found = last_known().find(phone().store, number)
    except CircuitOpen:  # failed a moment ago (logged then): no need to wait for it again
        found = last_known().lookup(number)
    except RedisError as exc:
        log.error("Redis unreachable answering a call to %s; using the last known state: %s", number, exc)
        found = last_known().lookup(number)
    return found if found else (None, None)


def record_call(call_sid: str, announcement: Announcement, line: Line, language: str) -> None:
    """Count a call that hears the announcement: now, or when Redis is back."""
    phone_store, main = phone().store, store()

    def write() -> None:
        if phone_store.announcements.call_started(call_sid, announcement.id, line.id, language):
            realtime.announcement_stats_soon(main, announcement.id)

    record = started_record(call_sid, announcement.id, line.id, language)
    count(write, record, f"call {call_sid}")


def record_outcome(call_sid: str, outcome: str) -> None:
    """Count how a call that heard the announcement went on (once per call): now, or when
    Redis is back (after the call's start, which may be waiting too)."""
    phone_store, main = phone().store, store()

    def write() -> None:
        if phone_store.announcements.call_outcome(call_sid, outcome):
            record = phone_store.announcements.call(call_sid)
            realtime.announcement_stats_soon(main, int(record["announcement_id"]))

    count(write, outcome_record(call_sid, outcome), f"the outcome of call {call_sid}")


def count(write: Callable[[], None], record: dict[str, Any], what: str) -> None:
    """Hand a counting write to the backlog (in order per call) and, when it must wait for
    Redis, its ``record`` to the spool on disk too; an error Redis answers with is logged,
    never heard."""
    phone_path = phone()
    try:
        if phone_path.counts.submit(write, key=record["call_sid"]):
            return
    except RedisError as exc:
        log.error("could not count %s: %s", what, exc)
        return
    try:
        phone_path.spool.submit(record)
    except Exception:  # the disk copy is a second chance: its failure must not reach the caller
        log.exception("could not spool %s; it waits in memory only", what)


@bp.route("/voice", methods=["POST"])
@twilio_signed
@within_budget
def voice() -> Response:
    """Answer a call: the announcement first when one is playing, else the normal routing."""
    line, announcement = find(request.form.get("To", ""))
    if line is None:
        return twiml(callflow.unknown_line())
    if announcement is None or not announcement.playing():
        return twiml(callflow.routing(line))
    language = next(iter(announcement.messages))
    record_call(request.form.get("CallSid", ""), announcement, line, language)
    return twiml(callflow.announce(line, announcement, language))


@bp.route("/voice/menu", methods=["POST"])
@twilio_signed
@within_budget
def menu() -> Response:
    """Take the caller's key: another language, repeat, or go on to an agent."""
    line, announcement = find(request.form.get("To", ""))
    if line is None:
        return twiml(callflow.unknown_line())
    call_sid = request.form.get("CallSid", "")
    if announcement is None or not announcement.playing():
        outcome, response = "routed", callflow.routing(line)
    else:
        digits = "" if request.args.get("next") else request.form.get("Digits", "").strip()[:1]
        language = request.args.get("lang", "")
        outcome, response = callflow.choose(line, announcement, language, digits)
    if outcome == "routed":
        record_outcome(call_sid, "routed")
    return twiml(response)


@bp.route("/voice/status", methods=["POST"])
@twilio_signed
@within_budget
def status() -> Response:
    """Count a call that heard the announcement and ended before going on as deflected."""
    if request.form.get("CallStatus", "") in FINAL_STATUSES:
        record_outcome(request.form.get("CallSid", ""), "deflected")
    return twiml(VoiceResponse())
