"""Try the phone line without a phone: post signed requests exactly as Twilio would.

Used by ``python -m crisis_console call``. Follows the call as Twilio does: the answer to
``/twilio/voice``, then the key the caller presses (or silence) to the Gather's action,
then the status callback, and describes each TwiML answer as a caller would hear it.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import urljoin

import requests
from twilio.request_validator import RequestValidator


def describe(xml: str) -> list[str]:
    """Return one line per verb of a TwiML answer, as the caller experiences it."""
    lines: list[str] = []
    for verb in ET.fromstring(xml):
        lines.extend(_describe(verb))
    return lines


def _describe(verb: ET.Element, indent: str = "") -> list[str]:
    tag, text = verb.tag, (verb.text or "").strip()
    if tag == "Say":
        return [f'{indent}🔊 [{verb.get("language", "?")}, {verb.get("voice", "default")}] "{text}"']
    if tag == "Play":
        return [f"{indent}🔊 plays recording {text}"]
    if tag == "Gather":
        head = f"{indent}⌨  listens for {verb.get('numDigits', '?')} key(s) for {verb.get('timeout', '5')} s while:"
        return [head, *(line for child in verb for line in _describe(child, indent + "    "))]
    if tag == "Dial":
        return [f"{indent}📞 connected to {text}"]
    if tag == "Enqueue":
        hold = f" (hold music {verb.get('waitUrl')})" if verb.get("waitUrl") else ""
        return [f"{indent}⏳ waits in queue {text}{hold}"]
    if tag == "Redirect":
        return [f"{indent}↪ continues at {text}"]
    if tag == "Hangup":
        return [f"{indent}☎ call ends"]
    return [f"{indent}{tag} {text}".rstrip()]


class PhoneCall:
    """One simulated call to a line of a running console."""

    def __init__(self, base_url: str, auth_token: str, to: str, caller: str = "+15555550123"):
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.params = {
            "CallSid": "CA" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": caller,
            "To": to,
            "Direction": "inbound",
        }
        self.http = requests.Session()

    def post(self, path: str, **extra: str) -> str:
        """POST a signed webhook request and return the TwiML answer."""
        url = urljoin(self.base_url + "/", path.lstrip("/"))
        params = {**self.params, **extra}
        signature = self.validator.compute_signature(url, params)
        response = self.http.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
        response.raise_for_status()
        return response.text

    def run(self, digits: str = "", say: Callable[[str], None] = print) -> None:
        """Call the line, press ``digits`` at the first menu (or nothing), then hang up."""
        answer = self.post("/twilio/voice", CallStatus="ringing")
        for _ in range(6):  # follow the call for a few steps at most
            for line in describe(answer):
                say(line)
            root = ET.fromstring(answer)
            gather, redirect = root.find("Gather"), root.find("Redirect")
            if gather is not None and digits:
                say(f"☎ caller presses {digits[0]}")
                answer, digits = (
                    self.post(gather.get("action", ""), Digits=digits[0], CallStatus="in-progress"),
                    digits[1:],
                )
            elif redirect is not None and (redirect.text or "").startswith("/twilio/"):
                if gather is not None:
                    say("☎ caller presses nothing")
                answer = self.post(redirect.text or "", CallStatus="in-progress")
            else:
                break
        self.post("/twilio/voice/status", CallStatus="completed", CallDuration="42")
        say("☎ caller hangs up (status callback sent)")
