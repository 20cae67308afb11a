"""Inbound SMS to the 311 number: a complaint on the ``sms`` channel, confirmed by reply.

The first words may name the category ("PLOW 02124 street not plowed", "No heat 02115"),
matched as forgivingly as agents' typing (case, punctuation, small typos); otherwise the
reply lists numbered categories and the next text picks one. A 5-digit number in the
text is taken as the ZIP code. The reply gives a reference number. Built only with the
SDK's MessagingResponse, behind the same signature check as the voice webhooks.
"""

from __future__ import annotations

import re

from flask import Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from crisis_console.extensions import store
from crisis_console.services import trends
from crisis_console.services.categories import Categories
from crisis_console.services.errors import ValidationError
from crisis_console.services.intake import Intake
from crisis_console.sockets import realtime
from crisis_console.webhooks import bp
from crisis_console.webhooks.signature import twilio_signed

MENU_SIZE = 8
#: The most words of a text tried as a category name ("street light out" is three).
NAME_WORDS = 5
ZIP_IN_TEXT = re.compile(r"\b(\d{5})\b")
FOOTER = " For emergencies call 911."


def reply(text: str) -> Response:
    """Answer with one SMS."""
    response = MessagingResponse()
    response.message(text)
    return Response(str(response), mimetype="text/xml")


def named_category(body: str) -> tuple[str, str] | None:
    """Return (code, the rest of the text) when the text starts with a category's name.

    ZIP codes are skipped while looking; the longest opening words that name one category
    exactly win, else the longest that name one with a small typo ("Downed tree on my car"
    is a downed tree, not a near miss of "downed tree on"). When only the ZIP is left the
    whole text is kept as the report's text.
    """
    words = body.split()
    named = [i for i, word in enumerate(words) if not ZIP_IN_TEXT.fullmatch(word)]
    intake = Intake(store())
    tries = [(count, fuzzy) for fuzzy in (False, True) for count in range(min(len(named), NAME_WORDS), 0, -1)]
    for count, fuzzy in tries:
        try:
            code = intake.category_for(" ".join(words[i] for i in named[:count]), fuzzy=fuzzy)
        except ValidationError:
            continue
        rest = [w for i, w in enumerate(words) if i not in set(named[:count])]
        text = " ".join(rest) if any(not ZIP_IN_TEXT.fullmatch(w) for w in rest) else body
        return code, text
    return None


def menu_options() -> list[tuple[str, str]]:
    """Return (code, name) of the categories to offer: the most reported in the last hour first."""
    categories = Categories(store()).list()
    recent = trends.series(store(), window="60m", bucket="60m")["totals"]
    ranked = sorted(categories, key=lambda c: (-recent.get(c.code, 0), c.name.lower()))
    return [(c.code, c.name) for c in ranked[:MENU_SIZE]]


def log(text: str, category: str, phone: str) -> Response:
    """Store the complaint and confirm it with its reference."""
    zip_match = ZIP_IN_TEXT.search(text)
    record = {"category": category, "channel": "sms", "text": text[:4000]}
    if zip_match:
        record["zip"] = zip_match.group(1)
    result = Intake(store()).submit([record], channel="sms", source=f"sms:{phone[-4:]}")
    if result["rejected"]:
        return reply("Sorry, we could not log that: " + result["rejected"][0]["error"]["message"] + FOOTER)
    realtime.trends_changed(1)
    name = Categories(store()).require(category).name
    return reply(f"Thank you. Your report ({name}) is logged as #{result['ids'][0]}.{FOOTER}")


@bp.route("/sms", methods=["POST"])
@twilio_signed
def sms() -> Response:
    """Log a texted report, or ask which category it is."""
    phone = request.form.get("From", "")
    body = " ".join(request.form.get("Body", "").split())
    pending = store().complaints.take_sms(phone)
    if pending and body.isdigit() and 1 <= int(body) <= len(pending["options"]):
        return log(pending["text"], pending["options"][int(body) - 1], phone)
    if not body:
        return reply("Please text what you want to report, e.g. PLOW 02124 street not plowed." + FOOTER)
    named = named_category(body)
    if named:
        return log(named[1], named[0], phone)
    options = menu_options()
    if not options:
        return reply("Thank you. We cannot take reports by text yet; please call 311." + FOOTER)
    store().complaints.remember_sms(phone, {"text": body, "options": [code for code, _ in options]})
    listing = "; ".join(f"{i} {name}" for i, (_, name) in enumerate(options, start=1))
    return reply(f"Which is it? Reply with a number: {listing}.")


#: Twilio's message statuses and what they mean for an alert delivery.
DELIVERY_STATUSES = {
    "accepted": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
}


@bp.route("/sms/status", methods=["POST"])
@twilio_signed
def sms_status() -> Response:
    """Record the status Twilio reports for an alert text (status callback of the Messages API)."""
    status = DELIVERY_STATUSES.get(request.form.get("MessageStatus", ""))
    delivery_id = store().alerts.by_provider(request.form.get("MessageSid", ""))
    if status and delivery_id:
        code = request.form.get("ErrorCode", "")
        store().alerts.provider_status(delivery_id, status, f"Twilio error {code}" if code else "")
        if current_app.extensions.get("socketio") is not None:
            realtime.delivery_changed(store().alerts.delivery(delivery_id) or {})
    return Response(status=204)
