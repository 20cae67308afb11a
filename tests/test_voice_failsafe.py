"""The phone line never breaks: with Redis gone, callers still hear the announcement."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from tests.conftest import TWILIO_TOKEN
from tests.helpers import TwilioSigner, live_announcement
from tests.servers import private_redis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs a redis-server it can stop"
)

LINE = "+16175550311"
PARAMS = {"CallSid": "CA1", "From": "+16175550123", "To": LINE}


def make_app(url: str, instance, **extra):
    """A console app on the given Redis with its instance folder."""
    return create_app(
        TestConfig(REDIS_URL=url, CRISIS_KEY_PREFIX="failsafe", TWILIO_AUTH_TOKEN=TWILIO_TOKEN, **extra)
    )


def tags(response) -> list[str]:
    """Return the top-level TwiML verbs of an answer, asserting it is valid TwiML."""
    assert response.status_code == 200, response.get_data(as_text=True)
    return [child.tag for child in ET.fromstring(response.get_data())]


def test_redis_stopped_mid_call_and_restart_without_redis(tmp_path, monkeypatch):
    """Stop Redis: the running process answers from memory; a new process answers from the file."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path))
    with private_redis() as (url, stop):
        app = make_app(url, tmp_path)
        store = app.extensions[STORE_EXTENSION]
        announcement_id = live_announcement(
            store,
            LINE,
            {"en": "Shelters are open.", "es": "Refugios abiertos."},
            {"type": "dial", "number": "+16175550100"},
        )
        # As the API does after every change: remember the state for when Redis is gone.
        from crisis_console.webhooks.voice import IVR_STATE

        app.extensions[IVR_STATE].save(store)
        twilio = TwilioSigner(app.test_client(), TWILIO_TOKEN)
        assert tags(twilio.post("/twilio/voice", PARAMS)) == ["Gather", "Redirect"]

        stop()
        answer = twilio.post("/twilio/voice", {**PARAMS, "CallSid": "CA2"})
        assert tags(answer) == ["Gather", "Redirect"]
        assert b"Shelters are open." in answer.get_data()
        menu = twilio.post(
            f"/twilio/voice/menu?announcement={announcement_id}&lang=en&next=1", {**PARAMS, "CallSid": "CA2"}
        )
        assert tags(menu) == ["Dial"]
        assert twilio.post("/twilio/voice/status", {**PARAMS, "CallStatus": "completed"}).status_code == 200

        restarted = make_app(url, tmp_path, REQUIRE_STORE=False)
        fresh = TwilioSigner(restarted.test_client(), TWILIO_TOKEN)
        answer = fresh.post("/twilio/voice", {**PARAMS, "CallSid": "CA3"})
        assert tags(answer) == ["Gather", "Redirect"]
        assert "Refugios abiertos." in fresh.post(
            f"/twilio/voice/menu?announcement={announcement_id}&lang=en", {**PARAMS, "Digits": "2"}
        ).get_data(as_text=True)
        unknown = fresh.post("/twilio/voice", {**PARAMS, "To": "+19999999999"})
        assert tags(unknown) == ["Say", "Hangup"]


def test_nothing_known_and_no_redis_is_still_valid_twiml(tmp_path, monkeypatch):
    """With no saved state and no Redis, a call still gets a polite answer, not an error."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path))
    with private_redis() as (url, stop):
        stop()
        app = make_app(url, tmp_path, REQUIRE_STORE=False)
        assert tags(TwilioSigner(app.test_client(), TWILIO_TOKEN).post("/twilio/voice", PARAMS)) == [
            "Say",
            "Hangup",
        ]
