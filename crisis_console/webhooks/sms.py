"""Inbound SMS to the 311 number: reports, keywords, and the approved key message in each reply.

A report: the first words may name the category ("PLOW 02124 street not plowed", "No heat
02115"), matched as forgivingly as agents' typing (case, punctuation, small typos);
otherwise the reply lists numbered categories and the next text picks one. A 5-digit
number in the text is taken as the ZIP code. The reply gives the reference number, then
the current key message (:func:`crisis_console.services.key_message.key_message`: the
public summary of the approved script the event marks for SMS, else the newest approved
one), then the 911 footer, within two SMS segments (:mod:`crisis_console.services.sms_text`
counts GSM-7 and UCS-2 and shortens only the key message). Never the script's agent notes.

Language: Spanish when the resident texted ES or ESPAÑOL (remembered for the number until
EN or ENGLISH), else when the text reads as Spanish
(:func:`crisis_console.services.sms_keywords.is_spanish`); English otherwise. The key
message is the chosen script's translation in that language when one is approved.

Keywords, matched only as the whole text and never logged as a complaint nor answered with
the menu: INFO or AYUDA → the key message and how to report; ES/ESPAÑOL, EN/ENGLISH → set
the reply language and answer as INFO; HELP → who we are, how to report, 911 and how to
opt out; STOP (and STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) → the number is recorded as
opted out (alerts skip it, see :mod:`crisis_console.services.alerting`) and gets the
carriers' confirmation; START, UNSTOP, YES → opted back in. An opted-out number's report
that names a category is still logged, answered with an empty ``<Response/>`` (it asked for
no more texts, and Twilio refuses to send to it anyway, error 21610); one that names none
cannot be shown the menu and is not logged under a guessed category. Where Twilio's own opt-out handling is
on, Twilio sends its confirmation of STOP and START and drops ours, so nobody gets two.

If Redis cannot be reached (or the store says it is unavailable) nothing is lost: the text
is appended to the spool ``instance/spool/sms.jsonl`` (:mod:`crisis_console.services.spool`:
one JSON line per text, fsynced before we answer) with its idempotency id
``sms:<MessageSid>``, and the texter is told we received it and will log it as soon as
the system is back, with the key message this process last sent in their language and the
911 footer (two segments at most). STOP and START get the carriers' confirmations (they are
on disk, and applied in the order they came, with the rest of the spool); HELP and INFO are
answered as usual (INFO with the last key message) and not spooled. Once Redis answers, the
scheduler pass of the web process or of a worker, or a worker of ``serve --only webhooks``
(:mod:`crisis_console.serving`), replays the spool (:func:`replay_spool`) through the same
rules as a live text, with the time it was received; a report is stored in the same Redis script that records its idempotency id, so it
is counted once whichever process replays it, however often (a live text whose answer failed
half-way carries the same id). A spooled report naming no category cannot be shown the menu;
it is logged as ``other`` when the catalogue has that category, else kept for an operator in
``instance/spool/sms-unsorted.jsonl``. Only if the spool cannot be written either does the
texter get "we cannot take texts right now".

Built only with the SDK's MessagingResponse, behind the same signature check as the voice
webhooks.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

from flask import Response, current_app, request
from redis import RedisError
from twilio.twiml.messaging_response import MessagingResponse

from crisis_console import clock
from crisis_console.extensions import store
from crisis_console.services import audit, trends
from crisis_console.services.categories import Categories, Category
from crisis_console.services.errors import ValidationError
from crisis_console.services.intake import Intake
from crisis_console.services.key_message import KeyMessage, key_message
from crisis_console.services.sms_keywords import Keyword, is_spanish, keyword
from crisis_console.services.sms_text import DoesNotFit, fit_reply
from crisis_console.services.spool import Spool
from crisis_console.sockets import realtime
from crisis_console.store import Store, StoreUnavailable
from crisis_console.webhooks import bp
from crisis_console.webhooks.signature import twilio_signed

logger = logging.getLogger(__name__)

MENU_SIZE = 8
#: ``app.extensions`` entry: language -> the key message last sent (for Redis outages).
LAST_KNOWN = "crisis_sms_last_known"
#: The most words of a text tried as a category name ("street light out" is three).
NAME_WORDS = 5
ZIP_IN_TEXT = re.compile(r"\b(\d{5})\b")
#: The spool of texts taken while Redis was down, under the instance folder, and where
#: spooled reports naming no category wait for an operator.
SPOOL_FOLDER = "spool"
SPOOL_NAME = "sms"
UNSORTED_NAME = "sms-unsorted"
#: The category a spooled report that names none is logged under, when the catalogue has it.
FALLBACK_CATEGORY = "other"

#: The fixed wording of replies, by language (the key message comes from the script).
WORDING: dict[str, dict[str, str]] = {
    "en": {
        "footer": "For emergencies call 911.",
        "logged": "Thank you. Your report ({name}) is logged as #{ref}.",
        "logged_short": "Thank you. Your report is logged as #{ref}.",
        "how_to_report": "To report a problem, text what and where, with the ZIP code.",
        "no_message": "There is no emergency update right now.",
        "exercise": "EXERCISE: ",
        "unavailable": "Sorry, we cannot take texts right now: please try again later or call 311.",
        "received": "We received your message and will log it as soon as our system is back.",
        "language_set": "We will answer you in English.",
        "not_logged": "Sorry, we could not log that: {error}",
        "empty": "Please text what you want to report, e.g. PLOW 02124 street not plowed.",
        "no_categories": "Thank you. We cannot take reports by text yet; please call 311.",
        "menu": "Which is it? Reply with a number: {listing}.",
        "help": "311 emergency texts: text a problem and its ZIP code to report it, INFO for updates. "
        "Emergencies: call 911. Msg&data rates may apply. Reply STOP to opt out.",
    },
    "es": {
        "footer": "Emergencias: llame al 911.",
        "logged": "Gracias. Registramos su reporte ({name}) con la referencia #{ref}.",
        "logged_short": "Gracias. Registramos su reporte con la referencia #{ref}.",
        "how_to_report": "Para reportar un problema, escriba qué pasa y dónde, con el código postal.",
        "no_message": "No hay avisos de emergencia en este momento.",
        "exercise": "SIMULACRO: ",
        "unavailable": "Lo sentimos, ahora no podemos recibir textos: intente más tarde o llame al 311.",
        "received": "Recibimos su mensaje y lo registraremos en cuanto nuestro sistema vuelva a funcionar.",
        "language_set": "Le responderemos en español.",
        "not_logged": "Lo sentimos, no pudimos registrarlo: {error}",
        "empty": "Escriba lo que quiere reportar, p. ej. PLOW 02124 calle sin limpiar.",
        "no_categories": "Gracias. Aún no recibimos reportes por texto; llame al 311.",
        "menu": "¿Qué es? Responda con un número: {listing}.",
        "help": "Textos 311 de emergencia: escriba el problema y su código postal para reportarlo, "
        "AYUDA para avisos. Emergencias: llame al 911. Pueden aplicar tarifas. Responda STOP para no "
        "recibir más mensajes.",
    },
}
#: The carriers' confirmations (Twilio's default wording), sent as they expect them.
OPTED_OUT = (
    "You have successfully been unsubscribed. You will not receive any more messages from this "
    "number. Reply START to resubscribe."
)
OPTED_OUT_SPANISH = (
    "Se ha dado de baja. No recibirá más mensajes de este número. Responda START para volver a suscribirse."
)
OPTED_IN = (
    "You have successfully been re-subscribed to messages from this number. Reply HELP for help. "
    "Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)


def reply(text: str) -> Response:
    """Answer with one SMS."""
    response = MessagingResponse()
    response.message(text)
    return Response(str(response), mimetype="text/xml")


def silence() -> Response:
    """Answer with no SMS at all (an empty ``<Response/>``): for numbers that opted out."""
    return Response(str(MessagingResponse()), mimetype="text/xml")


def words(language: str) -> dict[str, str]:
    """Return the fixed wording of replies in ``language`` (English when we have none)."""
    return WORDING.get(language, WORDING["en"])


def current_message(language: str) -> str:
    """Return the key message a reply in ``language`` carries now ("" when there is none),
    and remember it in the process for when Redis cannot be reached."""
    found: KeyMessage | None = key_message(store(), language)
    text = (words(language)["exercise"] if found.exercise else "") + found.text if found else ""
    current_app.extensions.setdefault(LAST_KNOWN, {})[language] = text
    return text


def sms_spool(instance: str | Path) -> Spool:
    """Return the spool of texts taken while Redis was down, under the ``instance`` folder."""
    return Spool(Path(instance) / SPOOL_FOLDER, SPOOL_NAME)


def unreachable(body: str) -> Response:
    """Answer when neither Redis nor the spool can take the text: nothing was kept, so say so
    and give the last key message this process sent."""
    found = keyword(body)
    language = (found[1] if found else None) or ("es" if is_spanish(body) else "en")
    wording = words(language)
    key = current_app.extensions.get(LAST_KNOWN, {}).get(language, "")
    return reply(fitted([wording["unavailable"]], key, wording["footer"]))


def spooled(phone: str, body: str, message_id: str) -> Response:
    """Keep a text that came while Redis is down on disk (fsynced), then answer it as far as
    can be without the store: received, with the last key message this process sent."""
    found = keyword(body)
    language = (found[1] if found else None) or ("es" if is_spanish(body) else "en")
    wording = words(language)
    if not body:
        return reply(f"{wording['empty']} {wording['footer']}")
    if found is not None and found[0] is Keyword.HELP:
        return reply(fitted([wording["help"]], "", ""))
    key = current_app.extensions.get(LAST_KNOWN, {}).get(language, "")
    if found is not None and found[0] is Keyword.INFO:  # asks, records nothing: not spooled
        return reply(fitted([""], key, f"{wording['how_to_report']} {wording['footer']}"))
    record = {
        "v": 1,
        "id": message_id,
        "from": phone,
        "to": request.form.get("To", ""),
        "body": body,
        "received_at": clock.iso(clock.now()),
    }
    try:
        sms_spool(current_app.instance_path).append(record)
    except OSError as exc:
        logger.error("SMS spool not writable (%s); text from %s was not kept", exc, f"...{phone[-4:]}")
        return unreachable(body)
    if found is not None and found[0] is Keyword.STOP:
        return reply(OPTED_OUT_SPANISH if found[1] == "es" else OPTED_OUT)
    if found is not None and found[0] is Keyword.START:
        return reply(OPTED_IN)
    if found is not None:  # ES / EN: remembered once the spool is replayed
        return reply(
            fitted([wording["language_set"], ""], key, f"{wording['how_to_report']} {wording['footer']}")
        )
    return reply(fitted([wording["received"]], key, wording["footer"]))


def fitted(heads: list[str], key: str, tail: str) -> str:
    """Return the first of ``heads`` with the key message and ``tail`` fitted in two segments."""
    for head in heads:
        try:
            return fit_reply(head, key, tail).text
        except DoesNotFit:
            continue
    return fit_reply("", "", tail).text if tail else heads[-1]


def info(language: str, head: str = "") -> str:
    """Return the INFO answer: the key message (or that there is none) and how to report."""
    wording = words(language)
    key = current_message(language)
    heads = [" ".join(part for part in (head, "" if key else wording["no_message"]) if part), ""]
    return fitted(heads, key, f"{wording['how_to_report']} {wording['footer']}")


def reply_language(phone: str, body: str) -> str:
    """Return the language to answer ``phone`` in: the one it chose, else the text's."""
    return store().sms.language(phone) or ("es" if is_spanish(body) else "en")


def category_name(category: Category, language: str) -> str:
    """Return a category's name in ``language`` (its Spanish name when it has one)."""
    return (category.name_es if language == "es" else "") or category.name


def named_category(body: str, intake: Intake | None = None) -> tuple[str, str] | None:
    """Return (code, the rest of the text) when the text starts with a category's name.

    ZIP codes are skipped while looking; the longest opening words that name one category
    exactly win, else the longest that name one with a small typo ("Downed tree on my car"
    is a downed tree, not a near miss of "downed tree on"). When only the ZIP is left the
    whole text is kept as the report's text.
    """
    words = body.split()
    named = [i for i, word in enumerate(words) if not ZIP_IN_TEXT.fullmatch(word)]
    intake = intake or Intake(store())
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


def menu_options(language: str = "en") -> list[tuple[str, str]]:
    """Return (code, name) of the categories to offer: the most reported in the last hour first."""
    categories = Categories(store()).list()
    recent = trends.series(store(), window="60m", bucket="60m")["totals"]
    ranked = sorted(categories, key=lambda c: (-recent.get(c.code, 0), c.name.lower()))
    return [(c.code, category_name(c, language)) for c in ranked[:MENU_SIZE]]


def complaint(text: str, category: str) -> dict[str, str]:
    """Return the intake record of a texted report (its ZIP taken from the text)."""
    record = {"category": category, "channel": "sms", "text": text[:4000]}
    zip_match = ZIP_IN_TEXT.search(text)
    if zip_match:
        record["zip"] = zip_match.group(1)
    return record


def log(
    text: str, category: str, phone: str, language: str, *, answer: bool = True, message_id: str = ""
) -> Response:
    """Store the complaint (once per ``message_id``) and confirm it with its reference and the
    current key message."""
    wording = words(language)
    once = [message_id] if message_id else None
    result = Intake(store()).submit(
        [complaint(text, category)], channel="sms", source=f"sms:{phone[-4:]}", once=once
    )
    if not answer:
        if not result["rejected"]:
            realtime.trends_changed(1)
        return silence()
    if result["rejected"]:
        error = result["rejected"][0]["error"]["message"]
        return reply(fitted([wording["not_logged"].format(error=error)], "", wording["footer"]))
    realtime.trends_changed(1)
    name = category_name(Categories(store()).require(category), language)
    ref = result["ids"][0]
    heads = [wording["logged"].format(name=name, ref=ref), wording["logged_short"].format(ref=ref)]
    return reply(fitted(heads, current_message(language), wording["footer"]))


def answer_keyword(word: Keyword, said_in: str | None, phone: str) -> Response:
    """Answer a keyword text; nothing is logged as a complaint and no menu is shown."""
    sms = store().sms
    subject = f"sms:{phone[-4:]}"
    if word is Keyword.STOP:
        if phone:
            sms.opt_out(phone, audit.entry(subject, "sms.opted_out", subject))
        return reply(OPTED_OUT_SPANISH if said_in == "es" else OPTED_OUT)
    if word is Keyword.START:
        if phone:
            sms.opt_in(phone, audit.entry(subject, "sms.opted_in", subject))
        return reply(OPTED_IN)
    language = said_in or sms.language(phone) or "en"
    if word is Keyword.HELP:
        return reply(fitted([words(language)["help"]], "", ""))
    opted_out = sms.opted_out(phone)
    if word in (Keyword.SPANISH, Keyword.ENGLISH):
        sms.set_language(phone, language)
        return silence() if opted_out else reply(info(language, words(language)["language_set"]))
    return silence() if opted_out else reply(info(language))


@bp.route("/sms", methods=["POST"])
@twilio_signed
def sms() -> Response:
    """Answer a keyword, or log a texted report, or ask which category it is."""
    body = " ".join(request.form.get("Body", "").split())
    phone = request.form.get("From", "")
    # Twilio's MessageSid names the text; a request without one still gets an id of its own.
    sid = request.form.get("MessageSid", "") or f"local-{uuid.uuid4().hex}"
    message_id = f"sms:{sid}"
    try:
        return answer_text(phone, body, message_id)
    except (RedisError, StoreUnavailable) as exc:
        logger.error("Redis unreachable answering a text; spooling it: %s", exc)
        return spooled(phone, body, message_id)


def answer_text(phone: str, body: str, message_id: str = "") -> Response:
    """Answer one text from ``phone`` (the webhook without its outage guard)."""
    found = keyword(body)
    if found is not None:
        return answer_keyword(found[0], found[1], phone)
    answer = not store().sms.opted_out(phone)
    pending = store().complaints.take_sms(phone)
    if pending and body.isdigit() and 1 <= int(body) <= len(pending["options"]):
        language = store().sms.language(phone) or pending.get("language") or "en"
        code = pending["options"][int(body) - 1]
        return log(pending["text"], code, phone, language, answer=answer, message_id=message_id)
    language = reply_language(phone, body)
    wording = words(language)
    if not body:
        return reply(f"{wording['empty']} {wording['footer']}") if answer else silence()
    named = named_category(body)
    if named:
        return log(named[1], named[0], phone, language, answer=answer, message_id=message_id)
    options = menu_options(language)
    if not options:
        return reply(f"{wording['no_categories']} {wording['footer']}") if answer else silence()
    if not answer:
        # It cannot be asked which category it is, and a guessed one would mislead the trends.
        return silence()
    store().complaints.remember_sms(
        phone, {"text": body, "options": [code for code, _ in options], "language": language}
    )
    listing = "; ".join(f"{i} {name}" for i, (_, name) in enumerate(options, start=1))
    return reply(wording["menu"].format(listing=listing))


def replay_spool(store: Store, instance: str | Path) -> int:
    """Apply the texts spooled under ``instance`` while Redis was down; return how many.

    Runs in the scheduler pass of every web process and worker and in each webhooks-only
    worker; any number may run at once (see :mod:`crisis_console.services.spool`). Raises
    the store's error if Redis fails again (the rest waits for the next pass).
    """
    unsorted = Spool(Path(instance) / SPOOL_FOLDER, UNSORTED_NAME)
    logged = [0]

    def handle(record: dict[str, Any]) -> None:
        logged[0] += replay_text(store, record, unsorted)

    done = sms_spool(instance).replay(handle)
    if logged[0]:
        realtime.trends_changed(logged[0])
    if done:
        logger.info("replayed %d spooled texts (%d complaints)", done, logged[0])
    return done


def replay_text(store: Store, record: dict[str, Any], unsorted: Spool) -> int:
    """Apply one spooled text as the webhook would have (no reply: it was answered when it
    came); return 1 when it stored a new complaint."""
    message_id = str(record.get("id") or "")
    phone = str(record.get("from") or "")
    body = " ".join(str(record.get("body") or "").split())
    received = str(record.get("received_at") or "")
    found = keyword(body)
    if found is not None:
        replay_keyword(store, found[0], found[1], phone, message_id, received)
        return 0
    if not body:
        return 0
    intake = Intake(store)
    pending = store.complaints.take_sms(phone)
    if pending and body.isdigit() and 1 <= int(body) <= len(pending["options"]):
        text, code = pending["text"], pending["options"][int(body) - 1]
    else:
        named = named_category(body, intake)
        if named is None:
            try:
                named = (intake.category_for(FALLBACK_CATEGORY, fuzzy=False), body)
            except ValidationError:
                logger.error("spooled text %s names no category; kept in %s", message_id, unsorted.path)
                unsorted.append(record)
                return 0
        code, text = named
    row = {**complaint(text, code), "occurred_at": received or None}
    once = [message_id] if message_id else None
    result = intake.submit([row], channel="sms", source=f"sms:{phone[-4:]}", once=once)
    if result["rejected"]:
        logger.error("spooled text %s was refused by intake: %s", message_id, result["rejected"][0]["error"])
        unsorted.append(record)
        return 0
    return result["accepted"] - result.get("repeated", 0)


def replay_keyword(
    store: Store, word: Keyword, said_in: str | None, phone: str, message_id: str, received: str
) -> None:
    """Apply a spooled keyword (STOP, START, a language) once; INFO and HELP were answered."""
    if word not in (Keyword.STOP, Keyword.START, Keyword.SPANISH, Keyword.ENGLISH) or not phone:
        return
    if message_id and store.complaints.applied_once(message_id):
        return
    subject = f"sms:{phone[-4:]}"
    if word is Keyword.STOP:
        store.sms.opt_out(phone, audit.entry(subject, "sms.opted_out", subject, spooled_at=received))
    elif word is Keyword.START:
        store.sms.opt_in(phone, audit.entry(subject, "sms.opted_in", subject, spooled_at=received))
    else:
        store.sms.set_language(phone, said_in or "en")
    if message_id:
        # After applying: a crash in between applies it again, which changes nothing.
        store.complaints.mark_applied(message_id, clock.iso(clock.now()))


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
