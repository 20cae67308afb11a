"""One approved message on every channel: changes announced once to every consumer, the
phone announcement drawn from the script, and what each channel says now."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from crisis_console import clock, scheduler
from crisis_console.extensions import socketio
from crisis_console.services import signals
from tests.helpers import ApiDesk, Heard

MARKER = "INTERNAL-MARKER do not read this to the public"
STORM = {"name": "Blizzard of the test", "kind": "winter_storm", "severity": "severe", "areas": ["02124"]}


class Desk(ApiDesk):
    """A writer and a reviewer (managers), an admin, and an agent."""

    STAFF = (*ApiDesk.STAFF, ("agent", "ana"))

    def event(self) -> dict:
        """Create and declare the storm."""
        event = self.post("writer", "/events", STORM).json
        assert self.post("writer", f"/events/{event['id']}/declare").status_code == 200
        return event

    def approved(self, event_id: int | None, language: str = "en", translation_of: int | None = None) -> dict:
        """Write a script with a summary and a marked agent note; the reviewer approves it."""
        body = {
            "title": f"Storm facts ({language})",
            "topic": "Safety",
            "language": language,
            "summary": f"Snow emergency ({language}): parking ban on snow routes.",
            "body": "## What you need to know\n\nStay off the roads.",
            "agent_notes": MARKER,
            "event_id": event_id,
            "translation_of": translation_of,
        }
        script = self.post("writer", "/scripts", body).json
        assert self.post("writer", f"/scripts/{script['id']}/submit").status_code == 200
        assert self.post("reviewer", f"/scripts/{script['id']}/approve").status_code == 200
        return script

    def line(self) -> dict:
        """Add a line offering English and Spanish."""
        body = {"number": "+16175550100", "name": "311", "route": {"type": "enqueue", "queue": "q"}}
        response = self.post("admin", "/lines", {**body, "languages": ["en", "es"]})
        assert response.status_code == 201, response.json
        return response.json


@pytest.fixture
def desk(auth, client) -> Desk:
    return Desk(auth, client)


def test_a_declaration_reaches_each_console_once_and_the_alert_rules(app, desk, store):
    """The view only calls the service; the one signal reaches the sockets and the alerts."""
    manager = socketio.test_client(app, namespace="/manager", headers=desk.headers["writer"])
    heard = Heard(store, signals.event_changed, "event")
    event = desk.event()
    assert heard.whats == ["created", "declared"]
    changes = [m for m in manager.get_received("/manager") if m["name"] == "event.changed"]
    assert [m["args"][0]["event"]["status"] for m in changes] == ["draft", "active"]
    alerts = desk.get("writer", "/alerts").json["alerts"]
    assert [a["message"].split(" (")[0] for a in alerts] == [event["name"]]
    assert "declared" in alerts[0]["message"]


def test_a_failing_subscriber_neither_hides_the_change_nor_fails_the_request(desk, store, caplog):
    """One consumer's trouble is logged; the manager's request succeeds and the others still hear."""

    def broken(sender, **record):
        raise RuntimeError("disk full")

    signals.script_changed.connect(broken, sender=store)
    try:
        heard = Heard(store, signals.script_changed, "script")
        script = desk.approved(None)
    finally:
        signals.script_changed.disconnect(broken, sender=store)
    assert heard.whats == ["created", "submitted", "approved"]
    assert desk.get("writer", f"/scripts/{script['id']}").json["state"] == "approved"
    assert "disk full" in caplog.text


def test_an_expired_script_is_announced_once_and_leaves_agents_pages(desk, store, monkeypatch):
    """The scheduler notices the expiry; whichever pass (or worker) is first announces it, once."""
    script = desk.approved(None)
    expires = datetime(2026, 1, 27, 12, 0, tzinfo=UTC)
    assert (
        desk.patch("writer", f"/scripts/{script['id']}", {"expires_at": clock.iso(expires)}).status_code
        == 200
    )
    heard = Heard(store, signals.script_changed, "script")
    monkeypatch.setattr(clock, "now", lambda: expires + timedelta(minutes=1))
    for _ in range(2):
        store.redis.delete(store.keys.scheduler_lock())
        scheduler.run_pass(store)
    assert heard.whats == ["expired"] and heard[0].id == script["id"]
    [entry] = [e for e in store.audit.read() if e["action"] == "script.expired"]
    assert entry["subject"] == f"script:{script['id']}" and entry["actor"] == "scheduler"


def test_an_announcement_drafted_from_a_script_says_its_key_message_in_each_language(desk):
    """Each language the line offers gets that translation's approved summary, linked to its
    version; it is a draft that a second manager must still approve; agent notes stay out."""
    event = desk.event()
    english = desk.approved(event["id"])
    spanish = desk.approved(event["id"], "es", translation_of=english["id"])
    line = desk.line()
    response = desk.post("writer", f"/scripts/{spanish['id']}/announcement", {"line_id": line["id"]})
    assert response.status_code == 201, response.json
    drafted = response.json
    assert drafted["state"] == "draft" and drafted["event_id"] == event["id"]
    assert drafted["messages"] == {
        "en": "Snow emergency (en): parking ban on snow routes.",
        "es": "Snow emergency (es): parking ban on snow routes.",
    }
    assert drafted["sources"] == {
        "en": {"script_id": english["id"], "version": 1},
        "es": {"script_id": spanish["id"], "version": 1},
    }
    assert drafted["spoken_seconds"]["en"] > 0 and drafted["warnings"] == []
    assert MARKER not in str(drafted)
    assert desk.post("writer", f"/announcements/{drafted['id']}/submit").status_code == 200
    refused = desk.post("writer", f"/announcements/{drafted['id']}/approve")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "two_person_rule"
    assert desk.post("reviewer", f"/announcements/{drafted['id']}/approve").status_code == 200


def test_an_announcement_needs_an_approved_key_message_in_a_language_of_the_line(desk):
    """A draft script (or one without a summary) cannot become an announcement: 409 naming why."""
    line = desk.line()
    draft = desk.post(
        "writer", "/scripts", {"title": "T", "topic": "Safety", "language": "en", "body": "B", "summary": "S"}
    ).json
    refused = desk.post("writer", f"/scripts/{draft['id']}/announcement", {"line_id": line["id"]})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "no_key_message"
    missing = desk.post("writer", f"/scripts/{draft['id']}/announcement", {"line_id": 999})
    assert missing.status_code == 422 and missing.json["error"]["field"] == "line_id"
    forged = desk.post(
        "writer",
        "/announcements",
        {
            "line_id": line["id"],
            "messages": {"en": "Hello"},
            "sources": {"en": {"script_id": 1, "version": 1}},
        },
    )
    assert forged.status_code == 201 and forged.json["sources"] == {}, "only the service links a script"


def test_approving_a_new_version_drafts_the_phone_line_its_replacement(desk):
    """The line on air says v1; once v2 is approved a draft saying v2 waits for review on that
    line (once), written by the console and not approvable by v2's writer."""
    event = desk.event()
    script = desk.approved(event["id"])
    line = desk.line()
    first = desk.post("writer", f"/scripts/{script['id']}/announcement", {"line_id": line["id"]}).json
    for who, action in (("writer", "submit"), ("reviewer", "approve"), ("writer", "activate")):
        assert desk.post(who, f"/announcements/{first['id']}/{action}").status_code == 200
    edited = {"summary": "Snow emergency: the parking ban now ends at 6 am."}
    assert desk.patch("writer", f"/scripts/{script['id']}", edited).status_code == 200
    assert desk.post("writer", f"/scripts/{script['id']}/submit").status_code == 200
    assert desk.post("reviewer", f"/scripts/{script['id']}/approve").status_code == 200
    drafts = [a for a in desk.get("writer", "/announcements").json["announcements"] if a["state"] == "draft"]
    assert [(a["line_id"], a["created_by"], a["sources"]) for a in drafts] == [
        (line["id"], "console", {"en": {"script_id": script["id"], "version": 2}})
    ]
    assert drafts[0]["messages"] == {"en": edited["summary"]}
    phone = desk.get("writer", f"/channels?event_id={event['id']}").json["phone"]
    assert phone["status"] == "behind" and phone["lagging"] == [
        {"script_id": script["id"], "carries": 1, "live": 2}
    ]
    assert phone["waiting"] == [{"id": drafts[0]["id"], "state": "draft", "line": "311"}]
    assert desk.post("writer", f"/announcements/{drafts[0]['id']}/submit").status_code == 200
    refused = desk.post("writer", f"/announcements/{drafts[0]['id']}/approve")
    assert refused.status_code == 403, "v2's writer may not approve what says v2"


def test_the_channel_report_shows_each_channel_on_the_approved_version_or_lagging(desk, client):
    """Approved v1 is on SMS, the public page and CAP at once; agents have it once pushed;
    after v2 is approved, the push is behind (one step: push v2) and the rest follow."""
    event = desk.event()
    script = desk.approved(event["id"])

    def report() -> dict:
        response = desk.get("writer", f"/channels?event_id={event['id']}")
        assert response.status_code == 200, response.json
        assert MARKER not in str(response.json)
        return response.json

    first = report()
    assert [a["version"] for a in first["approved"]] == [1]
    assert {name: first[name]["status"] for name in ("agents", "phone", "sms", "public", "cap")} == {
        "agents": "missing",
        "phone": "missing",
        "sms": "current",
        "public": "current",
        "cap": "current",
    }
    assert first["sms"]["replies"][0]["text"] == "Snow emergency (en): parking ban on snow routes."
    assert first["cap"]["revision"] >= 1 and first["public"]["rendered_at"]
    assert desk.post("writer", f"/scripts/{script['id']}/push", {"audience": "all"}).status_code == 201
    assert report()["agents"]["status"] == "current"

    assert (
        desk.patch(
            "writer", f"/scripts/{script['id']}", {"summary": "Parking ban lifted at 6 am."}
        ).status_code
        == 200
    )
    assert desk.post("writer", f"/scripts/{script['id']}/submit").status_code == 200
    assert desk.post("reviewer", f"/scripts/{script['id']}/approve").status_code == 200
    second = report()
    assert second["agents"]["status"] == "behind"
    assert second["agents"]["lagging"] == [{"script_id": script["id"], "carries": 1, "live": 2}]
    assert [second[name]["status"] for name in ("sms", "public", "cap")] == ["current"] * 3
    assert second["sms"]["replies"][0] == {
        "language": "en",
        "script_id": script["id"],
        "version": 2,
        "text": "Parking ban lifted at 6 am.",
        "other_event": None,
    }
    page = client.get("/manager/channels", headers=desk.headers["writer"]).get_data(as_text=True)
    assert "What each channel says now: Blizzard of the test" in page
    assert f"Push #{script['id']} v2 to all agents" in page and MARKER not in page
    assert desk.get("writer", "/channels?event_id=x").status_code == 422
    assert desk.get("writer", "/channels?event_id=999").status_code == 404
    assert desk.get("ana", f"/channels?event_id={event['id']}").status_code == 403


def test_republishing_is_audited_and_answers_the_public_page_state(desk, store):
    """The one-step fix for a public channel that lags (a publish lost to an outage)."""
    event = desk.event()
    desk.approved(event["id"])
    response = desk.post("writer", "/channels/republish")
    assert response.status_code == 200 and response.json["public"]["rendered_at"]
    assert [e["action"] for e in store.audit.read()][-1] == "channels.republished"


def test_agents_read_a_translation_group_as_one_script(desk):
    """Pushing the English script brings its Spanish translation to agents too (they read it in
    their language), so the group is up to date; a group never pushed is not."""
    event = desk.event()
    english = desk.approved(event["id"])
    desk.approved(event["id"], "es", translation_of=english["id"])
    other = desk.approved(event["id"])
    assert desk.post("writer", f"/scripts/{english['id']}/push", {"audience": "all"}).status_code == 201
    agents = desk.get("writer", f"/channels?event_id={event['id']}").json["agents"]
    assert agents["status"] == "behind"
    assert agents["lagging"] == [{"script_id": other["id"], "carries": 0, "live": 1}]
    assert desk.post("writer", f"/scripts/{other['id']}/push", {"audience": "all"}).status_code == 201
    assert desk.get("writer", f"/channels?event_id={event['id']}").json["agents"]["status"] == "current"


def test_agent_notes_reach_no_public_channel(desk, client, twilio):
    """A marker sentence in agent notes (en and es) is in no public page (HTML, JSON, per event),
    no CAP document nor the Atom index, no SMS reply (report, INFO, Spanish) and no
    announcement drafted from the script — while the key message is in each of them."""
    event = desk.event()
    english = desk.approved(event["id"])
    desk.approved(event["id"], "es", translation_of=english["id"])
    line = desk.line()
    drafted = desk.post("writer", f"/scripts/{english['id']}/announcement", {"line_id": line["id"]}).json

    def texted(body: str, sender: str) -> str:
        reply = twilio.post("/twilio/sms", {"From": sender, "To": line["number"], "Body": body})
        assert reply.status_code == 200
        return "".join(m.text or "" for m in ET.fromstring(reply.get_data(as_text=True)).iter("Message"))

    feed = client.get("/cap/v1/alerts.xml").get_data(as_text=True)
    documents = {
        url: client.get(urlsplit(url).path).get_data(as_text=True)
        for url in re.findall(r'href="([^"]+/cap/v1/alerts/[^"]+\.xml)"', feed)
    }
    public = {
        path: client.get(path).get_data(as_text=True)
        for path in ("/public", "/public?lang=es", f"/public/{event['id']}", "/public.json")
    }
    replies = {
        "report": texted("no heat 02124", "+16175550142"),
        "info": texted("INFO", "+16175550142"),
        "spanish": texted("AYUDA", "+16175550143"),
    }
    channels = {**public, **documents, "atom": feed, **replies, "announcement": str(drafted)}
    assert len(documents) >= 1
    assert [name for name, text in channels.items() if "INTERNAL-MARKER" in text] == []
    newest = max(documents, key=lambda url: int(url.rsplit("-", 1)[1].removesuffix(".xml")))
    carrying = {**public, "newest CAP document": documents[newest], "info": replies["info"]}
    carrying |= {"spanish": replies["spanish"], "announcement": str(drafted)}
    summary = "Snow emergency (en): parking ban on snow routes."
    missing = [
        name
        for name, text in carrying.items()
        if summary not in text and summary.replace("(en)", "(es)") not in text
    ]
    assert missing == [], "each channel carries the approved key message"


def test_approving_each_translation_in_turn_leaves_one_up_to_date_replacement(desk):
    """Spanish v2 approved first drafts a replacement (en v1 + es v2); English v2 approved next
    drafts one saying both new versions and withdraws the outdated one."""
    event = desk.event()
    english = desk.approved(event["id"])
    spanish = desk.approved(event["id"], "es", translation_of=english["id"])
    line = desk.line()
    first = desk.post("writer", f"/scripts/{english['id']}/announcement", {"line_id": line["id"]}).json
    for who, action in (("writer", "submit"), ("reviewer", "approve"), ("writer", "activate")):
        assert desk.post(who, f"/announcements/{first['id']}/{action}").status_code == 200
    for script in (spanish, english):
        assert (
            desk.patch(
                "writer", f"/scripts/{script['id']}", {"summary": f"New words {script['id']}."}
            ).status_code
            == 200
        )
        assert desk.post("writer", f"/scripts/{script['id']}/submit").status_code == 200
        assert desk.post("reviewer", f"/scripts/{script['id']}/approve").status_code == 200
    states = {
        a["id"]: (a["state"], a["sources"])
        for a in desk.get("writer", "/announcements").json["announcements"]
    }
    drafts = [(sources) for state, sources in states.values() if state == "draft"]
    assert drafts == [
        {"en": {"script_id": english["id"], "version": 2}, "es": {"script_id": spanish["id"], "version": 2}}
    ]
    assert sum(1 for state, _ in states.values() if state == "ended") == 1, "the outdated draft was withdrawn"


def test_an_older_push_is_found_behind_a_page_of_newer_ones(desk):
    """The report reads recent pushes a page at a time; a push older than a page still counts."""
    from crisis_console.services.channels import PUSH_PAGE

    event = desk.event()
    script = desk.approved(event["id"])
    assert desk.post("writer", f"/scripts/{script['id']}/push", {"audience": "all"}).status_code == 201
    other = desk.approved(None)
    for _ in range(PUSH_PAGE + 2):
        assert desk.post("writer", f"/scripts/{other['id']}/push", {"audience": "all"}).status_code == 201
    agents = desk.get("writer", f"/channels?event_id={event['id']}").json["agents"]
    assert agents["status"] == "current" and [p["script_id"] for p in agents["pushes"]] == [script["id"]]
