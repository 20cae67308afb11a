"""Voice webhooks: answer a call, take the caller's key, count how the call ended.

Every answer is TwiML from the SDK. If Redis cannot be reached, the line answers from the
last known state (memory, then ``instance/ivr-state.json``), and if nothing is known, with
a polite message: never an error page.
"""

from __future__ import annotations

import logging

from flask import Response, current_app, request
from redis import RedisError
from twilio.twiml.voice_response import VoiceResponse

from crisis_console.extensions import store
from crisis_console.services import callflow
from crisis_console.services.announcements import Announcement
from crisis_console.services.ivr_state import LastKnownState
from crisis_console.services.lines import Line
from crisis_console.sockets import realtime
from crisis_console.webhooks import bp
from crisis_console.webhooks.signature import twilio_signed

IVR_STATE = "crisis_console.ivr_state"
#: Call statuses that mean the call is over.
FINAL_STATUSES = frozenset({"completed", "canceled", "busy", "failed", "no-answer"})
log = logging.getLogger(__name__)


def last_known() -> LastKnownState:
    """Return the app's last-known phone-line state."""
    return current_app.extensions[IVR_STATE]


def twiml(response: VoiceResponse) -> Response:
    """Return TwiML with the content type Twilio expects."""
    return Response(str(response), mimetype="text/xml")


def find(number: str) -> tuple[Line | None, Announcement | None]:
    """Return the called line and its current announcement, from Redis or the last known state."""
    try:
        found = last_known().find(store(), number)
    except RedisError as exc:
        log.error("Redis unreachable answering a call to %s; using the last known state: %s", number, exc)
        found = last_known().lookup(number)
    return found if found else (None, None)


def record_call(call_sid: str, announcement: Announcement, line: Line, language: str) -> None:
    """Count a call that hears the announcement; a Redis failure is logged, never heard."""
    try:
        if store().announcements.call_started(call_sid, announcement.id, line.id, language):
            realtime.announcement_stats_soon(store(), announcement.id)
    except RedisError as exc:
        log.error("could not count call %s: %s", call_sid, exc)


def record_outcome(call_sid: str, outcome: str) -> None:
    """Count how a call that heard the announcement went on (once per call)."""
    try:
        if store().announcements.call_outcome(call_sid, outcome):
            record = store().announcements.call(call_sid)
            realtime.announcement_stats_soon(store(), int(record["announcement_id"]))
    except RedisError as exc:
        log.error("could not record the outcome of call %s: %s", call_sid, exc)


@bp.route("/voice", methods=["POST"])
@twilio_signed
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
def status() -> Response:
    """Count a call that heard the announcement and ended before going on as deflected."""
    if request.form.get("CallStatus", "") in FINAL_STATUSES:
        record_outcome(request.form.get("CallSid", ""), "deflected")
    return twiml(VoiceResponse())
