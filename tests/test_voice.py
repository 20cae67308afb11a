"""The phone line: lines, announcements under the two-person rule, signed webhooks, statistics."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from crisis_console import clock
from crisis_console.roles import Role
from crisis_console.services import signals
from tests.helpers import ApiDesk, Heard

LINE = "+16175550311"
CALLER = "+16175550123"


def twiml(response) -> ET.Element:
    """Parse a TwiML answer (asserting it is one)."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return root


class Desk(ApiDesk):
    """An admin and two managers calling the API with bearer tokens."""

    def line(self, route: dict | None = None, number: str = LINE) -> dict:
        """Create a line with English and Spanish."""
        body = {
            "number": number,
            "name": "311",
            "route": route
            or {"type": "enqueue", "queue": "311-agents", "hold_music_url": "https://example.org/hold.mp3"},
            "languages": ["en", "es"],
        }
        response = self.post("admin", "/lines", body)
        assert response.status_code == 201, response.json
        return response.json

    def live_announcement(self, line_id: int, **extra) -> dict:
        """Write, approve and activate an announcement."""
        body = {
            "line_id": line_id,
            "messages": {
                "en": "Due to the winter storm, trash collection is suspended until Thursday.",
                "es": "Debido a la tormenta de nieve, la recolección de basura se suspende hasta el jueves.",
            },
            **extra,
        }
        created = self.post("writer", "/announcements", body)
        assert created.status_code == 201, created.json
        announcement_id = created.json["id"]
        self.post("writer", f"/announcements/{announcement_id}/submit")
        assert self.post("reviewer", f"/announcements/{announcement_id}/approve").status_code == 200
        activated = self.post("writer", f"/announcements/{announcement_id}/activate")
        assert activated.status_code == 200, activated.json
        return activated.json


@pytest.fixture
def desk(auth, client):
    """Staff to set up lines and announcements."""
    return Desk(auth, client)


def call(twilio, path: str = "/twilio/voice", sid: str = "CA1", **params):
    """Post a call event as Twilio would."""
    return twilio.post(path, {"CallSid": sid, "From": CALLER, "To": LINE, "AccountSid": "AC1", **params})


def test_signatures_are_checked(desk, twilio, client):
    """Valid → TwiML; missing, tampered or signed for another URL → 403."""
    desk.line()
    params = {"CallSid": "CA9", "From": CALLER, "To": LINE}
    assert twilio.post("/twilio/voice", params).status_code == 200
    assert twilio.post("/twilio/voice", params, signature="").status_code == 403
    good = twilio.signature("/twilio/voice", params)
    tampered = client.post(
        "/twilio/voice", data={**params, "From": "+15555550000"}, headers={"X-Twilio-Signature": good}
    )
    assert tampered.status_code == 403
    elsewhere = twilio.signature("/twilio/voice", params, url="https://attacker.example/twilio/voice")
    assert twilio.post("/twilio/voice", params, signature=elsewhere).status_code == 403
    for path in ("/twilio/voice/menu", "/twilio/voice/status"):
        assert client.post(path, data=params).status_code == 403


@pytest.mark.parametrize(
    ("route", "tag", "text", "attribute"),
    [
        ({"type": "dial", "number": "+16175550100"}, "Dial", "+16175550100", None),
        (
            {"type": "enqueue", "queue": "311-agents", "hold_music_url": "https://example.org/hold.mp3"},
            "Enqueue",
            "311-agents",
            ("waitUrl", "https://example.org/hold.mp3"),
        ),
        (
            {"type": "redirect", "url": "https://example.org/flow"},
            "Redirect",
            "https://example.org/flow",
            None,
        ),
    ],
)
def test_without_announcement_calls_take_the_normal_route(desk, twilio, route, tag, text, attribute):
    """No announcement: the line's own Dial, Enqueue or Redirect, and nothing else."""
    desk.line(route)
    root = twiml(call(twilio))
    assert [child.tag for child in root] == [tag]
    assert root[0].text == text
    if attribute:
        assert root[0].get(attribute[0]) == attribute[1]


def test_unknown_number_gets_a_polite_answer(twilio):
    """A call to a number that is not a line hears a message and a hang-up, not an error."""
    root = twiml(call(twilio, To="+19999999999"))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert "911" in root[0].text.replace(" ", "")


def test_callers_hear_the_announcement_then_the_menu(desk, twilio):
    """The announcement plays inside a Gather with the Spanish key and repeat, then goes on."""
    line = desk.line()
    announcement = desk.live_announcement(line["id"])
    root = twiml(call(twilio))
    assert [child.tag for child in root] == ["Gather", "Redirect"]
    gather = root[0]
    assert gather.get("numDigits") == "1"
    assert gather.get("action") == f"/twilio/voice/menu?announcement={announcement['id']}&lang=en"
    says = gather.findall("Say")
    assert says[0].text.startswith("Due to the winter storm")
    assert (says[0].get("language"), says[0].get("voice")) == ("en-US", "Polly.Joanna")
    assert says[1].text == "Para español, oprima 2." and says[1].get("language") == "es-US"
    assert "press 9" in says[2].text
    assert root[1].text == f"/twilio/voice/menu?announcement={announcement['id']}&lang=en&next=1"


def test_keys_switch_language_repeat_and_go_on(desk, twilio):
    """2 → Spanish, 9 → again, silence → the normal route."""
    line = desk.line()
    announcement = desk.live_announcement(line["id"])
    menu = f"/twilio/voice/menu?announcement={announcement['id']}&lang=en"
    call(twilio, sid="CA2")
    spanish = twiml(call(twilio, menu, sid="CA2", Digits="2"))
    first = spanish.find("Gather/Say")
    assert first.text.startswith("Debido a la tormenta") and first.get("language") == "es-US"
    assert spanish.find("Gather/Say").get("voice") == "Polly.Lupe"
    again = twiml(
        call(twilio, f"/twilio/voice/menu?announcement={announcement['id']}&lang=es", sid="CA2", Digits="9")
    )
    assert again.find("Gather/Say").text.startswith("Debido")
    routed = twiml(call(twilio, menu + "&next=1", sid="CA2"))
    assert [child.tag for child in routed] == ["Enqueue"]


def test_statistics_from_callbacks(desk, twilio):
    """Heard + hung up → deflected; heard + went on → routed; each call counted once."""
    line = desk.line()
    announcement = desk.live_announcement(line["id"])
    menu = f"/twilio/voice/menu?announcement={announcement['id']}&lang=en&next=1"
    for sid in ("CA10", "CA11", "CA12"):
        call(twilio, sid=sid)
    call(twilio, "/twilio/voice/status", sid="CA10", CallStatus="completed")  # hung up: deflected
    call(twilio, menu, sid="CA11")  # went on to an agent
    call(twilio, "/twilio/voice/status", sid="CA11", CallStatus="completed")
    call(twilio, "/twilio/voice/status", sid="CA10", CallStatus="completed")  # a retried callback
    call(twilio, "/twilio/voice", sid="CA11")  # Twilio re-requesting the same call
    stats = desk.get("writer", f"/announcements/{announcement['id']}/stats").json
    assert stats == {"calls": 3, "heard": 3, "deflected": 1, "routed": 1}


def test_two_person_rule_and_illegal_transitions(desk):
    """The writer cannot approve; activating an unapproved announcement is a 409."""
    line = desk.line()
    created = desk.post(
        "writer", "/announcements", {"line_id": line["id"], "messages": {"en": "Storm update."}}
    ).json
    assert desk.post("writer", f"/announcements/{created['id']}/activate").status_code == 409
    desk.post("writer", f"/announcements/{created['id']}/submit")
    own = desk.post("writer", f"/announcements/{created['id']}/approve")
    assert own.status_code == 403 and own.json["error"]["code"] == "two_person_rule"
    assert desk.post("reviewer", f"/announcements/{created['id']}/approve").json["state"] == "approved"


def test_a_second_activation_ends_the_first(desk, twilio, store):
    """One active announcement per line: the new one replaces the old, and both changes are audited."""
    line = desk.line()
    first = desk.live_announcement(line["id"])
    second = desk.live_announcement(line["id"], messages={"en": "Shelters are open tonight."})
    assert desk.get("writer", f"/announcements/{first['id']}").json["state"] == "ended"
    root = twiml(call(twilio))
    assert root.find("Gather/Say").text == "Shelters are open tonight."
    actions = [
        (e["action"], e["subject"]) for e in store.audit.read() if e["subject"].startswith("announcement:")
    ]
    assert ("announcement.activated", f"announcement:{second['id']}") in actions
    assert ("announcement.ended", f"announcement:{first['id']}") in actions


def test_a_scheduled_activation_lets_the_live_one_play_until_its_start(desk, twilio, store, monkeypatch):
    """Activating a future announcement keeps the live one on air until the new start, then
    hands over: callers always hear a message, the counts, events and audit trail say so."""
    from crisis_console import scheduler

    line = desk.line()
    start = datetime(2026, 1, 27, 6, 0, tzinfo=UTC)
    moment = {"now": start - timedelta(hours=2)}
    monkeypatch.setattr(clock, "now", lambda: moment["now"])
    live = desk.live_announcement(line["id"])
    later = desk.live_announcement(
        line["id"], messages={"en": "Shelters are open tonight."}, starts_at="2026-01-27T06:00:00Z"
    )
    assert desk.get("writer", f"/announcements/{live['id']}").json["state"] == "active"
    assert later["follows"] == live["id"] and not later["playing"]

    moment["now"] = start - timedelta(minutes=1)
    assert twiml(call(twilio, sid="CA-before")).find("Gather/Say").text.startswith("Due to the winter storm")
    moment["now"] = start + timedelta(minutes=1)  # no scheduler pass yet: the webhook hands over
    assert twiml(call(twilio, sid="CA-after")).find("Gather/Say").text == "Shelters are open tonight."
    assert desk.get("writer", f"/announcements/{live['id']}/stats").json["calls"] == 1
    assert desk.get("writer", f"/announcements/{later['id']}/stats").json["calls"] == 1

    changed = Heard(store, signals.announcement_changed, "announcement")
    assert scheduler.run_pass(store) == [live["id"]]
    assert [(c["id"], c["state"]) for c in changed] == [(later["id"], "active"), (live["id"], "ended")]
    assert changed.whats == ["started", "ended"]
    assert desk.get("writer", f"/announcements/{live['id']}").json["ended_by"] == "scheduler"
    trail = [(e["action"], e["subject"], e.get("details", e)) for e in store.audit.read()]
    [activated] = [d for a, s, d in trail if a == "announcement.activated" and s.endswith(f":{later['id']}")]
    assert str(activated["follows"]) == str(live["id"])
    [ended] = [d for a, s, d in trail if a == "announcement.ended" and s.endswith(f":{live['id']}")]
    assert str(ended["handed_over_to"]) == str(later["id"])
    assert twiml(call(twilio, sid="CA-later")).find("Gather/Say").text == "Shelters are open tonight."


def test_ending_a_waiting_announcement_keeps_the_live_one(desk, twilio, monkeypatch):
    """Ending the scheduled one before its start leaves the line on the one it followed."""
    line = desk.line()
    start = datetime(2026, 1, 27, 6, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: start - timedelta(hours=1))
    live = desk.live_announcement(line["id"])
    later = desk.live_announcement(
        line["id"], messages={"en": "Shelters are open tonight."}, starts_at="2026-01-27T06:00:00Z"
    )
    assert desk.post("writer", f"/announcements/{later['id']}/end").json["state"] == "ended"
    monkeypatch.setattr(clock, "now", lambda: start + timedelta(hours=1))
    assert twiml(call(twilio)).find("Gather/Say").text.startswith("Due to the winter storm")
    assert desk.get("writer", f"/announcements/{live['id']}").json["state"] == "active"


def test_schedule_is_honoured_by_the_webhook_itself(desk, twilio, monkeypatch):
    """Before starts_at and after ends_at callers get the normal route, with no worker running."""
    line = desk.line()
    start = datetime(2026, 1, 27, 6, 0, tzinfo=UTC)
    desk.live_announcement(line["id"], starts_at="2026-01-27T06:00:00Z", ends_at="2026-01-27T12:00:00Z")
    for moment, expected in (
        (start - timedelta(minutes=1), ["Enqueue"]),
        (start + timedelta(hours=1), ["Gather", "Redirect"]),
        (start + timedelta(hours=6), ["Enqueue"]),
    ):
        monkeypatch.setattr(clock, "now", lambda moment=moment: moment)
        assert [child.tag for child in twiml(call(twilio))] == expected, moment


def test_announcement_input_errors_name_the_field(desk):
    """Bad announcement input is a 422 naming the field; a long message carries a warning."""
    line = desk.line()
    for body, field in (
        ({"messages": {"en": "x"}}, "line_id"),
        ({"line_id": line["id"], "messages": {}}, "messages"),
        ({"line_id": line["id"], "messages": {"fr": "Bonjour"}}, "messages.fr"),
        ({"line_id": line["id"], "messages": {"en": "x" * 4001}}, "messages.en"),
        ({"line_id": line["id"], "messages": {"en": "x"}, "voice": "robot<>"}, "voice"),
        ({"line_id": line["id"], "messages": {"en": "x"}, "audio_url": "ftp://x"}, "audio_url"),
        (
            {
                "line_id": line["id"],
                "messages": {"en": "x"},
                "starts_at": "2026-01-02T00:00:00Z",
                "ends_at": "2026-01-01T00:00:00Z",
            },
            "ends_at",
        ),
    ):
        response = desk.post("writer", "/announcements", body)
        assert response.status_code == 422, body
        assert response.json["error"]["field"] == field
    long = desk.post(
        "writer", "/announcements", {"line_id": line["id"], "messages": {"en": "word " * 100}}
    ).json
    assert long["spoken_seconds"]["en"] == 40 and long["warnings"]


def test_line_input_errors_name_the_field(desk):
    """Line numbers, routes and languages are checked; a number is used once."""
    for body, field in (
        ({"number": "617-555", "name": "x", "route": {"type": "dial", "number": "+16175550100"}}, "number"),
        ({"number": LINE, "name": "x", "route": {"type": "fax"}}, "route.type"),
        ({"number": LINE, "name": "x", "route": {"type": "dial", "number": "12"}}, "route.number"),
        ({"number": LINE, "name": "x", "route": {"type": "redirect", "url": "nope"}}, "route.url"),
        (
            {"number": LINE, "name": "x", "route": {"type": "enqueue", "queue": "q"}, "languages": ["xx"]},
            "languages",
        ),
    ):
        response = desk.post("admin", "/lines", body)
        assert response.status_code == 422, body
        assert response.json["error"]["field"] == field
    desk.line()
    again = desk.post(
        "admin", "/lines", {"number": LINE, "name": "dup", "route": {"type": "enqueue", "queue": "q"}}
    )
    assert again.status_code == 409


def test_preview_is_exactly_what_the_caller_hears(desk, twilio):
    """The console's preview returns the same TwiML the webhook answers."""
    line = desk.line()
    announcement = desk.live_announcement(line["id"])
    preview = desk.get("writer", f"/announcements/{announcement['id']}/preview?lang=en").json
    assert preview["twiml"] == call(twilio).get_data(as_text=True)
    assert preview["spoken_seconds"] == announcement["spoken_seconds"]["en"]


def test_roles_for_lines_and_announcements(desk, auth, client):
    """Agents cannot see lines or announcements; managers cannot add lines."""
    agent = auth.make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(agent.username)}"}
    assert client.get("/api/v1/lines", headers=headers).status_code == 403
    assert client.get("/api/v1/announcements", headers=headers).status_code == 403
    body = {"number": LINE, "name": "x", "route": {"type": "enqueue", "queue": "q"}}
    assert desk.post("writer", "/lines", body).status_code == 403


@pytest.mark.served
def test_call_command_hears_the_announcement_and_presses_2(served_app, runner, monkeypatch):
    """``call --line … --digits 2`` posts signed requests to the running console and prints the call."""
    from click.testing import CliRunner

    from crisis_console.cli import cli
    from crisis_console.services.announcements import Announcements
    from tests.conftest import TWILIO_TOKEN
    from tests.helpers import live_announcement

    number = "+16175550399"
    announcement_id = live_announcement(
        served_app.store,
        number,
        {"en": "Roads are closed.", "es": "Calles cerradas."},
        {"type": "dial", "number": "+16175550100"},
    )
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    result = CliRunner().invoke(cli, ["call", "--line", number, "--url", served_app.url, "--digits", "2"])
    assert result.exit_code == 0, result.output
    assert '"Roads are closed."' in result.output
    assert "caller presses 2" in result.output and '"Calles cerradas."' in result.output
    assert "connected to +16175550100" in result.output
    assert Announcements(served_app.store).stats(announcement_id) == {
        "calls": 1,
        "heard": 1,
        "deflected": 0,
        "routed": 1,
    }


def test_webhooks_only_app_answers_calls_and_nothing_else(redis_url, prefix, tmp_path, monkeypatch, desk):
    """The phone-path app serves the signed webhooks; other paths are JSON 404s, not pages."""
    from crisis_console.app import create_webhooks_app
    from crisis_console.config import TestConfig
    from tests.conftest import TWILIO_TOKEN
    from tests.helpers import TwilioSigner

    desk.line()
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "webhooks"))
    app = create_webhooks_app(
        TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    )
    client = app.test_client()
    root = twiml(TwilioSigner(client, TWILIO_TOKEN).post("/twilio/voice", {"CallSid": "CA1", "To": LINE}))
    assert [child.tag for child in root] == ["Enqueue"]
    assert client.get("/login").status_code == 404
    assert client.get("/login").json["error"]["code"] == "not_found"
    assert client.post("/twilio/voice", data={"To": LINE}).status_code == 403


def test_scheduler_ends_announcements_past_their_end_once(desk, store, twilio, monkeypatch):
    """A pass ends what is past its end time (audited, as the scheduler); a second pass in the
    same interval is skipped by the lock, so several workers never double up."""
    from crisis_console import scheduler

    line = desk.line()
    announcement = desk.live_announcement(line["id"], ends_at="2026-01-27T12:00:00Z")
    later = datetime(2026, 1, 27, 12, 1, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: later)
    changed = Heard(store, signals.announcement_changed, "announcement")
    assert scheduler.run_pass(store) == [announcement["id"]]
    assert changed[0]["state"] == "ended" and changed.whats == ["ended"]
    assert scheduler.run_pass(store) == []  # lock held for this interval
    assert desk.get("writer", f"/announcements/{announcement['id']}").json["ended_by"] == "scheduler"
    assert [child.tag for child in twiml(call(twilio))] == ["Enqueue"]


def test_scheduler_records_a_scheduled_start_once(desk, store, monkeypatch):
    """When a scheduled announcement's start time comes, a pass records it (audited) once."""
    from crisis_console import scheduler

    line = desk.line()
    announcement = desk.live_announcement(line["id"], starts_at="2026-01-27T06:00:00Z")
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 1, 27, 5, 59, tzinfo=UTC))
    changed = Heard(store, signals.announcement_changed, "announcement")
    scheduler.run_pass(store)
    assert changed == []
    store.redis.delete(store.keys.scheduler_lock())
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 1, 27, 6, 1, tzinfo=UTC))
    scheduler.run_pass(store)
    assert [c["id"] for c in changed] == [announcement["id"]] and changed[0]["playing"]
    store.redis.delete(store.keys.scheduler_lock())
    scheduler.run_pass(store)
    assert len(changed) == 1
    started = [e for e in store.audit.read() if e["action"] == "announcement.started"]
    assert [e["subject"] for e in started] == [f"announcement:{announcement['id']}"]


def test_a_line_is_deleted_only_when_no_announcement_is_active_on_it(desk, twilio, store, auth, client):
    """DELETE refuses with 409 while an announcement is active; afterwards the number is free
    again and calls to it are no longer routed; both edits are audited."""
    line = desk.line()
    changed = desk.patch(
        "admin", f"/lines/{line['id']}", {"route": {"type": "dial", "number": "+16175550100"}}
    )
    assert changed.status_code == 200 and changed.json["route"] == {"type": "dial", "number": "+16175550100"}
    same = desk.patch("admin", f"/lines/{line['id']}", {"route": {"type": "dial", "number": "+16175550100"}})
    assert same.status_code == 200  # saving the routing form unchanged is no error
    assert [child.tag for child in twiml(call(twilio))] == ["Dial"]
    announcement = desk.live_announcement(line["id"])
    busy = desk.client.delete(f"/api/v1/lines/{line['id']}", headers=desk.headers["admin"])
    assert busy.status_code == 409 and busy.json["error"]["code"] == "announcement_active"
    assert busy.json["error"]["field"] == "line_id"
    auth.login_as(Role.ADMIN)
    page = client.get("/admin/lines").get_data(as_text=True)
    assert "end it on the Phone line page before deleting" in page  # no Delete button to refuse
    assert f'/api/v1/lines/{line["id"]}" data-api-method="DELETE"' not in page
    desk.post("writer", f"/announcements/{announcement['id']}/end")
    page = client.get("/admin/lines").get_data(as_text=True)
    assert f'/api/v1/lines/{line["id"]}" data-api-method="DELETE"' in page
    refused = desk.client.delete(f"/api/v1/lines/{line['id']}", headers=desk.headers["writer"])
    assert refused.status_code == 403
    assert desk.client.delete(f"/api/v1/lines/{line['id']}", headers=desk.headers["admin"]).status_code == 204
    assert desk.client.delete(f"/api/v1/lines/{line['id']}", headers=desk.headers["admin"]).status_code == 404
    assert desk.get("admin", "/lines").json["lines"] == []
    assert [child.tag for child in twiml(call(twilio))] == ["Say", "Hangup"]  # no longer a line
    actions = [e["action"] for e in store.audit.read() if e["subject"] == f"line:{line['id']}"]
    assert actions == ["line.created", "line.updated", "line.updated", "line.deleted"]
    assert desk.line()["number"] == LINE  # the number can be added again


def test_the_phone_form_names_languages_rather_than_codes(desk, auth, client):
    """The message fields say "Message in English" and "Message in Español (Spanish)"."""
    desk.line()
    auth.login_as(Role.MANAGER)
    page = client.get("/manager/phone").get_data(as_text=True)
    assert '<label for="ann-en">Message in English</label>' in page
    assert '<label for="ann-es">Message in Español (Spanish)</label>' in page
    assert "Message in en<" not in page and "Message in es<" not in page


def test_answers_say_how_long_the_console_took(twilio, client):
    """Every answer carries Server-Timing (the app's own milliseconds), so a slow answer seen by
    Twilio or a benchmark can be told apart from time spent before the console got to it."""
    for response in (call(twilio, To="+19999999999"), client.get("/api/v1/openapi.json")):
        name, duration = response.headers["Server-Timing"].split(";dur=")
        assert name == "app" and 0 <= float(duration) < 60_000
