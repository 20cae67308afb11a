"""What a caller hears: TwiML for a call, built only with the Twilio SDK's VoiceResponse.

Pure functions of a line, its announcement and the caller's choices, so the webhook,
the console's preview and the ``call`` command all say exactly the same thing.

Keys: the line's languages are 1, 2, 3… in the order the line lists them (English 1,
Spanish 2); 9 repeats; any other key, or none, goes on to the line's normal routing.
"""

from __future__ import annotations

from twilio.twiml.voice_response import Gather, VoiceResponse

from crisis_console.services.announcements import Announcement
from crisis_console.services.lines import SAY_LANGUAGES, Line

MENU_PATH = "/twilio/voice/menu"
REPEAT_KEY = "9"
GATHER_SECONDS = 4

#: "For <language>, press N", said in that language so a caller who needs it understands it.
CHOOSE_LANGUAGE = {
    "en": "For English, press {digit}.",
    "es": "Para español, oprima {digit}.",
    "fr": "Pour le français, appuyez sur {digit}.",
    "ht": "Pou kreyòl, peze {digit}.",
    "pt": "Para português, pressione {digit}.",
    "zh": "普通话请按 {digit}。",
    "vi": "Tiếng Việt, xin bấm số {digit}.",
    "ru": "Для русского языка нажмите {digit}.",
    "ar": "للعربية، اضغط {digit}.",
}
REPEAT = {
    "en": "To hear this again, press 9. Please stay on the line to reach us.",
    "es": "Para escuchar de nuevo, oprima 9. Por favor, permanezca en la línea para hablar con nosotros.",
}
UNKNOWN_LINE = (
    "Thank you for calling. This number is not taking calls right now. "
    "If this is an emergency, hang up and dial 9 1 1."
)


def routing(line: Line) -> VoiceResponse:
    """Return the line's normal routing: a Dial, an Enqueue or a Redirect."""
    response = VoiceResponse()
    route = line.route
    if route.get("type") == "dial":
        response.dial(route["number"])
    elif route.get("type") == "enqueue":
        response.enqueue(route["queue"], wait_url=route.get("hold_music_url") or None)
    else:
        response.redirect(route["url"], method="POST")
    return response


def unknown_line() -> VoiceResponse:
    """Return the polite answer for a number that is not a configured line."""
    response = VoiceResponse()
    response.say(UNKNOWN_LINE, voice="Polly.Joanna", language="en-US")
    response.hangup()
    return response


def menu_url(announcement: Announcement, language: str, *, go_on: bool = False) -> str:
    """Return the URL Twilio posts the caller's key (or silence) to."""
    return f"{MENU_PATH}?announcement={announcement.id}&lang={language}" + ("&next=1" if go_on else "")


def announce(line: Line, announcement: Announcement, language: str | None = None) -> VoiceResponse:
    """Return the announcement in ``language`` (default: the line's first), with the key menu."""
    language = language if language in announcement.messages else next(iter(announcement.messages))
    response = VoiceResponse()
    gather = Gather(
        num_digits=1, timeout=GATHER_SECONDS, action=menu_url(announcement, language), method="POST"
    )
    if announcement.audio_url:
        gather.play(announcement.audio_url)
    else:
        gather.say(
            announcement.messages[language],
            voice=announcement.voice_for(language),
            language=SAY_LANGUAGES.get(language, "en-US"),
        )
    for digit, other in language_keys(line, announcement).items():
        if other != language:
            gather.say(
                CHOOSE_LANGUAGE.get(other, "").format(digit=digit),
                voice=announcement.voice_for(other),
                language=SAY_LANGUAGES.get(other, "en-US"),
            )
    gather.say(
        REPEAT.get(language, REPEAT["en"]),
        voice=announcement.voice_for(language),
        language=SAY_LANGUAGES.get(language, "en-US"),
    )
    response.append(gather)
    # No key pressed: go on to the normal routing (counted as routed by the menu handler).
    response.redirect(menu_url(announcement, language, go_on=True), method="POST")
    return response


def language_keys(line: Line, announcement: Announcement) -> dict[str, str]:
    """Return key -> language for the languages this announcement speaks, in the line's order."""
    return {
        str(position + 1): language
        for position, language in enumerate(line.languages)
        if language in announcement.messages and position < 8
    }


def choose(line: Line, announcement: Announcement, language: str, digits: str) -> tuple[str, VoiceResponse]:
    """Answer a key press: ("repeat", …) another language or again, or ("routed", routing)."""
    keys = language_keys(line, announcement)
    if digits == REPEAT_KEY:
        return "repeat", announce(line, announcement, language)
    if digits in keys:
        return "repeat", announce(line, announcement, keys[digits])
    return "routed", routing(line)
