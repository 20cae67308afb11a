"""Texts to the 311 number become complaints, signed by Twilio, confirmed by reply."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from crisis_console.services import trends
from crisis_console.services.categories import Categories

NUMBER = "+16175550311"
TEXTER = "+16175550188"
#: Twilio names each text; a resent one keeps its MessageSid and is logged once.
MESSAGE_SIDS = (f"SM{n:032x}" for n in itertools.count(1))


@pytest.fixture
def catalogue(store):
    """Two categories a texter can name."""
    Categories(store).create({"code": "snow_plowing", "name": "Snow plowing", "aliases": ["plow"]})
    Categories(store).create({"code": "no_heat", "name": "No heat", "aliases": ["heat"]})


def text(twilio, body: str) -> str:
    """Send an SMS as Twilio would; return the reply's text."""
    response = twilio.post(
        "/twilio/sms", {"From": TEXTER, "To": NUMBER, "Body": body, "MessageSid": next(MESSAGE_SIDS)}
    )
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response" and [child.tag for child in root] == ["Message"]
    return root[0].text


def test_keyword_text_is_logged_with_zip_and_reference(twilio, catalogue, store):
    """'PLOW 02124 …' is a snow-plowing complaint in 02124, confirmed with its reference."""
    answer = text(twilio, "PLOW 02124 street not plowed since Monday")
    assert answer.startswith("Thank you. Your report (Snow plowing) is logged as #") and "911" in answer
    counts = trends.series(store, window="10m", bucket="1m", zip_code="02124")
    assert counts["totals"]["snow_plowing"] == 1
    latest = store.complaints.recent(1)[0]
    assert (latest["channel"], latest["text"]) == ("sms", "02124 street not plowed since Monday")


def test_unknown_first_word_gets_a_menu_and_the_reply_picks(twilio, catalogue, store):
    """Without a keyword the texter chooses by number; the original words are kept."""
    answer = text(twilio, "my radiators are cold 02125")
    assert answer.startswith("Which is it? Reply with a number: 1 No heat; 2 Snow plowing")
    assert text(twilio, "1").startswith("Thank you. Your report (No heat)")
    latest = store.complaints.recent(1)[0]
    assert (latest["category"], latest["zip"], latest["text"]) == (
        "no_heat",
        "02125",
        "my radiators are cold 02125",
    )
    assert text(twilio, "7").startswith("Which is it?")  # no menu pending any more: a new report


def test_sms_webhook_is_signed(client, catalogue):
    """Unsigned texts are refused."""
    assert client.post("/twilio/sms", data={"From": TEXTER, "Body": "PLOW"}).status_code == 403
