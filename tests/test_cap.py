"""CAP 1.2: the feed and documents validate against the OASIS schema, and the inbox opens drafts."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from crisis_console import clock
from crisis_console.cap.hazards import hazard_for
from crisis_console.roles import Role
from crisis_console.services.cap_feed import CapFeed, CapSettings, Subject
from crisis_console.services.events import Events
from crisis_console.services.scripts import Scripts
from crisis_console.store import Store
from tests.helpers import live_announcement

SHARED_CAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cap"
CAP = {"c": "urn:oasis:names:tc:emergency:cap:1.2"}
ATOM = {"a": "http://www.w3.org/2005/Atom"}
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
EXAMPLES = sorted(SHARED_CAP.glob("*.cap")) if SHARED_CAP.is_dir() else []

pytestmark = pytest.mark.skipif(not SHARED_CAP.is_dir(), reason=f"{SHARED_CAP} (shared CAP data) is missing")


@pytest.fixture(scope="module")
def cap12() -> etree.XMLSchema:
    """The OASIS CAP 1.2 schema from the shared data folder."""
    return etree.XMLSchema(etree.parse(str(next(SHARED_CAP.glob("*cap12.xsd")))))


def valid_cap(schema: etree.XMLSchema, body: bytes) -> etree._Element:
    """Parse a CAP document, assert it is valid CAP 1.2 with numeric-offset times, return it."""
    root = etree.fromstring(body)
    assert schema.validate(root), schema.error_log
    for element in root.iter("{*}sent", "{*}effective", "{*}onset", "{*}expires"):
        assert CAP_TIME.match(element.text), element.text
    return root


def text(root: etree._Element, path: str) -> str:
    """Return the text at a CAP path ('' when absent)."""
    return root.findtext(path, "", CAP)


def feed_entries(client) -> list[etree._Element]:
    """Read the Atom feed and return its entries."""
    response = client.get("/cap/v1/alerts.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    root = etree.fromstring(response.data)
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    return root.findall("a:entry", ATOM)


def document(client, slug: str) -> bytes:
    """Fetch one CAP document."""
    response = client.get(f"/cap/v1/alerts/{slug}.xml")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype in ("application/cap+xml", "application/xml")
    return response.data


def declared_event(store: Store, **overrides) -> int:
    """Create and declare an event through the service, as a manager would."""
    data = {
        "name": "Harbor flood",
        "kind": "flood",
        "severity": "severe",
        "areas": ["02128", "East Boston"],
        "details": {"hotline": "311", "shelter_list": "Orient Heights school"},
        **overrides,
    }
    events = Events(store)
    event = events.create(data, actor="manager1")
    events.declare(event.id, actor="manager1")
    return event.id


def references(root: etree._Element) -> list[str]:
    """Return the references of a message, one triplet each."""
    return text(root, "c:references").split()


def triplet(root: etree._Element) -> str:
    """Return how another message names this one."""
    return ",".join(text(root, f"c:{name}") for name in ("sender", "identifier", "sent"))


# --- the feed and its documents ------------------------------------------------------------


def test_feed_is_public_atom_and_empty_without_active_events(client):
    """Anyone may read the feed; with nothing declared it has no entries."""
    assert feed_entries(client) == []


def test_a_declared_event_is_an_alert_in_valid_cap(client, store, cap12):
    """Declaring an event publishes an Alert whose fields map the event."""
    event_id = declared_event(store)
    entries = feed_entries(client)
    assert len(entries) == 1
    link = entries[0].find("a:link", ATOM)
    assert link.get("type") == "application/cap+xml"
    assert link.get("href").endswith(f"/cap/v1/alerts/event-{event_id}-1.xml")

    root = valid_cap(cap12, document(client, f"event-{event_id}"))
    assert text(root, "c:status") == "Actual"
    assert text(root, "c:msgType") == "Alert"
    assert text(root, "c:scope") == "Public"
    assert text(root, "c:identifier").endswith(f":event:{event_id}:1")
    assert entries[0].findtext("a:id", "", ATOM) == text(root, "c:identifier")
    assert text(root, "c:sent").endswith("-00:00")
    assert references(root) == []
    info = root.find("c:info", CAP)
    assert text(info, "c:category") == "Met"
    assert text(info, "c:event") == "Flood"
    assert text(info, "c:severity") == "Severe"
    assert text(info, "c:urgency") == "Immediate"
    assert text(info, "c:certainty") == "Observed"
    assert text(info, "c:headline") == "Harbor flood"
    assert text(info, "c:area/c:areaDesc") == "02128; East Boston"
    assert "Shelter list: Orient Heights school" in text(info, "c:description")
    assert text(info, "c:contact") == "311"


def test_polling_again_publishes_nothing_new(client, store, cap12):
    """Identifiers are stable: an unchanged event keeps its one message however often it is read."""
    event_id = declared_event(store)
    first = document(client, f"event-{event_id}")
    feed_entries(client)
    assert document(client, f"event-{event_id}") == first
    assert len(store.cap.history(f"event:{event_id}")) == 1


def test_a_change_is_an_update_naming_the_earlier_message(client, store, cap12):
    """Changing the event's details publishes an Update that references the Alert."""
    event_id = declared_event(store)
    alert = valid_cap(cap12, document(client, f"event-{event_id}"))
    Events(store).update(event_id, {"severity": "extreme", "areas": ["02128"]}, actor="manager1")

    update = valid_cap(cap12, document(client, f"event-{event_id}"))
    assert text(update, "c:msgType") == "Update"
    assert text(update, "c:identifier").endswith(f":event:{event_id}:2")
    assert references(update) == [triplet(alert)]
    assert text(update, "c:info/c:severity") == "Extreme"
    assert text(update, "c:info/c:area/c:areaDesc") == "02128"
    # The Alert stays fetchable as it was sent.
    assert valid_cap(cap12, document(client, f"event-{event_id}-1")).findtext("c:msgType", "", CAP) == "Alert"


def test_an_announcement_going_live_updates_the_event_and_has_its_own_message(client, store, cap12):
    """A live surge announcement is an entry of its own and changes the event's message too."""
    event_id = declared_event(store)
    alert = valid_cap(cap12, document(client, f"event-{event_id}"))
    announcement_id = live_announcement(
        store,
        "+16175550100",
        {"en": "Flood shelters are open.", "es": "Los refugios están abiertos."},
        {"type": "dial", "number": "+16175550199"},
    )

    entries = feed_entries(client)
    hrefs = sorted(e.find("a:link", ATOM).get("href").rsplit("/", 1)[1] for e in entries)
    # Every revision stays listed: the event's Alert and its Update, and the announcement's Alert.
    assert hrefs == [
        f"announcement-{announcement_id}-1.xml",
        f"event-{event_id}-1.xml",
        f"event-{event_id}-2.xml",
    ]

    update = valid_cap(cap12, document(client, f"event-{event_id}"))
    assert text(update, "c:msgType") == "Update"
    assert references(update) == [triplet(alert)]
    assert "hear: Flood shelters are open." in text(update, "c:info/c:description")
    spanish = update.findall("c:info", CAP)[1]
    assert text(spanish, "c:language") == "es"
    assert "Los refugios están abiertos." in text(spanish, "c:description")

    message = valid_cap(cap12, document(client, f"announcement-{announcement_id}"))
    assert text(message, "c:msgType") == "Alert"
    assert text(message, "c:status") == "Actual"
    assert [text(i, "c:language") for i in message.findall("c:info", CAP)] == ["en", "es"]
    assert text(message, "c:info/c:category") == "Met"
    assert text(message, "c:info/c:contact") == "+16175550100"

    from crisis_console.services.announcements import Announcements

    Announcements(store).act(announcement_id, "end", actor="manager1")
    ended = valid_cap(cap12, document(client, f"announcement-{announcement_id}"))
    assert text(ended, "c:msgType") == "Cancel"
    assert references(ended) == [triplet(message)]
    after = valid_cap(cap12, document(client, f"event-{event_id}"))
    assert text(after, "c:msgType") == "Update"
    assert "hear:" not in text(after, "c:info/c:description")


def test_approved_scripts_are_the_instruction_in_plain_text(client, store, cap12):
    """The event's approved script reaches the CAP instruction without Markdown or HTML."""
    event_id = declared_event(store)
    scripts = Scripts(store)
    script = scripts.create(
        {
            "title": "Where to go",
            "topic": "Safety",
            "body": "Go to **higher ground**.\n\n- Avoid <b>flood</b> water\n- See [the city site](https://city.example/flood) or call [311](tel:311)",
            "event_id": event_id,
        },
        actor="writer",
    )
    scripts.act(script.id, "submit", actor="writer")
    scripts.act(script.id, "approve", actor="reviewer")

    root = valid_cap(cap12, document(client, f"event-{event_id}"))
    instruction = text(root, "c:info/c:instruction")
    assert instruction == (
        "Where to go\nGo to higher ground.\n- Avoid flood water\n"
        "- See the city site (https://city.example/flood) or call 311"
    )
    assert "<" not in instruction and "**" not in instruction


def test_stand_down_is_a_cancel_that_stays_in_the_feed_for_a_day(app, client, store, cap12):
    """A stood-down event is published as Cancel naming every earlier message, then leaves the feed."""
    event_id = declared_event(store)
    alert = valid_cap(cap12, document(client, f"event-{event_id}"))
    Events(store).update(event_id, {"name": "Harbor flood, day 2"}, actor="manager1")
    update = valid_cap(cap12, document(client, f"event-{event_id}"))
    Events(store).stand_down(event_id, actor="manager1")

    entries = feed_entries(client)
    assert len(entries) == 3  # Alert, Update and Cancel, newest first
    cancel = valid_cap(cap12, document(client, f"event-{event_id}"))
    assert text(cancel, "c:msgType") == "Cancel"
    assert [e.findtext("a:id", "", ATOM) for e in entries] == [
        text(cancel, "c:identifier"),
        text(update, "c:identifier"),
        text(alert, "c:identifier"),
    ]
    assert references(cancel) == [triplet(alert), triplet(update)]
    assert text(cancel, "c:info/c:urgency") == "Past"
    assert text(cancel, "c:info/c:responseType") == "AllClear"
    assert text(cancel, "c:info/c:headline").startswith("Ended: ")

    with app.test_request_context():
        from crisis_console.cap.views import cap_feed

        feed = cap_feed()
    assert [s.key for s, _h in feed.in_force(clock.now() + timedelta(hours=23))] == [f"event:{event_id}"]
    assert feed.in_force(clock.now() + timedelta(hours=25)) == []
    # Nothing is published after the Cancel.
    assert len(store.cap.history(f"event:{event_id}")) == 3


def test_an_exercise_is_published_with_status_exercise(client, store, cap12):
    """Drills say so: status Exercise, a note and an EXERCISE headline."""
    event_id = declared_event(
        store, name="Winter drill", kind="winter_storm", severity="moderate", exercise=True
    )
    root = valid_cap(cap12, document(client, f"event-{event_id}"))
    assert text(root, "c:status") == "Exercise"
    assert "drill" in text(root, "c:note")
    assert text(root, "c:info/c:headline") == "EXERCISE: Winter drill"
    assert text(root, "c:info/c:event") == "Winter Storm"
    assert text(root, "c:info/c:urgency") == "Expected"


def test_drafts_and_unknown_ids_are_not_published(client, store):
    """A draft event is not news yet; unknown and malformed names are 404s."""
    draft = Events(store).create({"name": "Maybe", "kind": "other", "severity": "minor"}, actor="m")
    assert feed_entries(client) == []
    for slug in (f"event-{draft.id}", "event-999", "event-1-7", "nonsense", "event-x", "announcement-1-2-3"):
        response = client.get(f"/cap/v1/alerts/{slug}.xml")
        assert response.status_code == 404, slug
        assert response.json["error"]["code"] == "not_found"


def test_processes_publishing_at_once_publish_one_revision(app, redis_url, store, cap12):
    """Several processes reading the feed at the same moment still publish each change once."""
    prefix = app.config["CRISIS_KEY_PREFIX"]
    # Declared through a store of its own, which no subscriber hears: the readers publish it.
    event_id = declared_event(Store(store.redis, prefix))
    settings_ = CapSettings("crisis-console@localhost", "urn:crisis-console:localhost:t", "311", "City")
    clients = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    results: list[dict] = []

    def poll(client: redis.Redis) -> None:
        feed = CapFeed(Store(client, prefix), settings_)
        barrier.wait()
        results.append(feed.latest(Subject("event", event_id))[0])

    threads = [threading.Thread(target=poll, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert {r["identifier"] for r in results} == {f"urn:crisis-console:localhost:t:event:{event_id}:1"}
    assert len(store.cap.history(f"event:{event_id}")) == 1
    published = [e for e in store.audit.latest(20) if e["action"] == "cap.published"]
    assert len(published) == 1


def test_sender_and_links_follow_public_base_url(app, client, store, cap12):
    """The sender and the feed's links use PUBLIC_BASE_URL's host when it is set."""
    app.config["PUBLIC_BASE_URL"] = "https://311.example.gov"
    event_id = declared_event(store)
    entry = feed_entries(client)[0]
    assert (
        entry.find("a:link", ATOM).get("href")
        == f"https://311.example.gov/cap/v1/alerts/event-{event_id}-1.xml"
    )
    root = valid_cap(cap12, document(client, f"event-{event_id}"))
    assert text(root, "c:sender") == "crisis-console@311.example.gov"
    assert text(root, "c:identifier").startswith("urn:crisis-console:311.example.gov:")


# --- the inbox ---------------------------------------------------------------------------------


def bearer(auth, role: str = Role.MANAGER) -> dict[str, str]:
    """Return the Authorization header of a new user's API token."""
    user = auth.make_user(role)
    return {"Authorization": f"Bearer {auth.accounts.create_token(user.username, 'cap')}"}


def post_cap(client, headers: dict[str, str], body: bytes):
    """Post a CAP document to the inbox."""
    return client.post("/cap/v1/inbox", data=body, headers={**headers, "Content-Type": "application/cap+xml"})


#: What the inbox does with each shared example: (status, hazard or error code).
EXPECTED = {
    "australia.cap": (201, "other"),  # a structure fire: no template, opened as "other"
    "canada.cap": (200, "AllClear"),  # an all-clear update
    "earthquake.cap": (201, "other"),  # CAP 1.1, SAME EQW
    "invalid.cap": (422, "invalid_cap"),  # scope missing
    "no_optional_fields.cap": (422, "no_info"),  # valid, but no <info>
    "noaa_errors.cap": (422, "invalid_cap"),  # empty urgency, severity, certainty
    "wcatwc-warning.cap": (201, "flood"),  # tsunami warning (update of an alert never seen here)
    "weather.cap": (201, "flood"),  # NWS flash flood watch, SAME FFA
    "thunderstorm.cap": (201, "other"),
    "43b080713727.cap": (201, "other"),  # homeland security advisory
    "KAR0-0306112239-SW.cap": (201, "other"),  # AMBER alert, CAP 1.1
}


def expected_for(path: Path) -> tuple[int, str] | None:
    """Return the expectation of a shared example by the end of its name."""
    return next((value for name, value in EXPECTED.items() if path.name.endswith("__" + name)), None)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name.rsplit("__", 1)[-1])
def test_every_shared_example_is_accepted_or_rejected_with_a_reason(auth, client, store, path):
    """Each real CAP file opens a draft event, is taken with the reason it opens none, or is refused clearly."""
    response = post_cap(client, bearer(auth), path.read_bytes())
    body = response.json
    assert response.status_code in (200, 201, 422), body
    if response.status_code == 201:
        event = body["event"]
        assert body["opened"] is True and event["status"] == "draft"
        assert Events(store).require(event["id"]).details["cap_identifier"] == body["alert"]["identifier"]
        assert event["kind"] in ("other", *{t["hazard"] for t in body["templates"]})
        assert body["notes"] and body["notes"][0].startswith(f"hazard {event['kind']}")
    elif response.status_code == 200:
        assert body["opened"] is False and body["reason"]
    else:
        assert body["error"]["code"] in ("invalid_cap", "no_info") and body["error"]["message"]
        assert body["error"]["field"]
    expected = expected_for(path)
    assert expected is not None, f"{path.name} is new: add what the inbox should do with it to EXPECTED"
    status, detail = expected
    assert response.status_code == status, body
    if status == 201:
        assert body["event"]["kind"] == detail
    elif status == 200:
        assert detail in body["reason"]
    else:
        assert body["error"]["code"] == detail


def test_invalid_example_names_what_is_wrong(auth, client):
    """The schema's complaint reaches the sender without namespaces, with the line."""
    path = next(SHARED_CAP.glob("*invalid.cap"))
    error = post_cap(client, bearer(auth), path.read_bytes()).json["error"]
    assert error["message"].startswith("Not valid CAP 1.2 (line 9)")
    assert "scope" in error["message"] and "urn:" not in error["message"]


def test_an_nws_warning_opens_a_draft_with_its_templates(auth, client, store):
    """A flood watch opens a draft flood event with areas, severity and the flood templates."""
    path = next(SHARED_CAP.glob("*weather.cap"))
    response = post_cap(client, bearer(auth), path.read_bytes())
    assert response.status_code == 201
    body = response.json
    event = body["event"]
    assert event["name"].startswith("Flash Flood Watch issued August 30")
    assert (event["kind"], event["severity"], event["exercise"]) == ("flood", "severe", False)
    assert event["areas"] == ["Central and Southern Lewis and Clark", "Lewis and Clark"]
    assert event["details"]["cap_sender"] == "w-nws.webmaster@noaa.gov"
    assert event["created_by"].startswith("cap-inbox:")
    assert {t["path"] for t in body["templates"]} == {
        "scripts_library/templates/flood.en.md",
        "scripts_library/templates/flood.es.md",
    }
    assert body["import"]["body"] == {"event_id": event["id"], "hazard": "flood"}
    assert "FFA" in body["notes"][0]


def test_the_same_alert_twice_opens_one_event(auth, client, store):
    """A repeated sender and identifier is a 409 naming the event it opened."""
    headers = bearer(auth)
    body = next(SHARED_CAP.glob("*thunderstorm.cap")).read_bytes()
    first = post_cap(client, headers, body)
    assert first.status_code == 201
    again = post_cap(client, headers, body)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "duplicate"
    assert again.json["error"]["field"] == "identifier"
    assert f"event {first.json['event']['id']}" in again.json["error"]["message"]
    assert len(Events(store).list()) == 1


def cap_alert(
    identifier: str,
    *,
    status: str = "Actual",
    msg_type: str = "Alert",
    references: str = "",
    event: str = "Winter Storm Warning",
    code: str = "WSW",
) -> bytes:
    """Return a small valid CAP 1.2 alert."""
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>w-nws.webmaster@noaa.gov</sender>
  <sent>2026-11-24T10:00:00-05:00</sent><status>{status}</status><msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}
  <info><category>Met</category><event>{event}</event><urgency>Expected</urgency>
    <severity>Unknown</severity><certainty>Likely</certainty>
    <eventCode><valueName>SAME</valueName><value>{code}</value></eventCode>
    <headline>{event} for Suffolk</headline>
    <area><areaDesc>Suffolk; Eastern Norfolk</areaDesc></area></info>
</alert>""".encode()


def test_exercise_opens_an_exercise_event_and_test_opens_nothing(auth, client, store):
    """Status Exercise opens a drill event; Test and Draft are disregarded, as CAP asks."""
    headers = bearer(auth)
    response = post_cap(client, headers, cap_alert("ex-1", status="Exercise"))
    assert response.status_code == 201
    event = response.json["event"]
    assert (event["exercise"], event["kind"], event["severity"]) == (True, "winter_storm", "moderate")
    assert event["areas"] == ["Suffolk", "Eastern Norfolk"]
    assert any("severity Unknown" in note for note in response.json["notes"])
    for status in ("Test", "Draft", "System"):
        ignored = post_cap(client, headers, cap_alert(f"x-{status}", status=status))
        assert ignored.status_code == 200
        assert ignored.json["opened"] is False and status in ignored.json["reason"]
    assert len(Events(store).list()) == 1


def test_cancel_and_update_of_a_received_alert_open_nothing_and_name_its_event(auth, client, store):
    """Follow-ups of an alert that opened an event point at that event instead of opening another."""
    headers = bearer(auth)
    opened = post_cap(client, headers, cap_alert("wsw-1")).json["event"]
    reference = "w-nws.webmaster@noaa.gov,wsw-1,2026-11-24T10:00:00-05:00"
    update = post_cap(client, headers, cap_alert("wsw-2", msg_type="Update", references=reference))
    assert update.status_code == 200
    assert f"event {opened['id']}" in update.json["reason"]
    assert update.json["event"]["id"] == opened["id"]
    cancel = post_cap(client, headers, cap_alert("wsw-3", msg_type="Cancel", references=reference))
    assert cancel.status_code == 200
    assert cancel.json["opened"] is False and "Cancel" in cancel.json["reason"]
    assert cancel.json["event"]["id"] == opened["id"]
    for msg_type in ("Ack", "Error"):
        answer = post_cap(
            client, headers, cap_alert(f"wsw-{msg_type}", msg_type=msg_type, references=reference)
        )
        assert answer.status_code == 200 and msg_type in answer.json["reason"]
    assert len(Events(store).list()) == 1
    actions = [e["action"] for e in store.audit.latest(50)]
    assert actions.count("cap.received") == 5


def test_our_own_cap_message_is_accepted_by_the_inbox(auth, client, store):
    """What the feed publishes is a CAP alert the inbox (and so any CAP reader) can take."""
    event_id = declared_event(store, kind="hurricane", name="Hurricane Ada")
    mine = document(client, f"event-{event_id}")
    response = post_cap(client, bearer(auth, Role.ADMIN), mine)
    assert response.status_code == 201
    assert (response.json["event"]["kind"], response.json["event"]["severity"]) == ("hurricane", "severe")


@pytest.mark.parametrize(
    ("event", "code", "kind"),
    [
        ("Winter Storm Warning", "WSW", "winter_storm"),
        ("Blizzard Warning", "BZW", "winter_storm"),
        ("Flash Flood Warning", "FFW", "flood"),
        ("Hurricane Warning", "HUW", "hurricane"),
        ("Hurricane Watch", "HUA", "hurricane"),
        ("Excessive Heat Warning", "EHW", "extreme_heat"),
        ("Heat Advisory", "HTY", "extreme_heat"),
        ("Boil Water Notice", "", "boil_water"),
        ("Widespread power outage", "", "power_outage"),
        ("Tropical Storm Watch", "", "hurricane"),
        ("Earthquake", "EQW", "other"),
    ],
)
def test_hazards_are_mapped_from_nws_codes_and_words(event, code, kind):
    """SAME/NWS codes win, then the event's words; anything else is "other"."""
    codes = [("SAME", code)] if code else []
    assert hazard_for(event=event, event_codes=codes)[0] == kind


def test_vtec_phenomena_are_read():
    """An NWS VTEC string names the hazard when no event code does."""
    vtec = [("VTEC", "/O.NEW.KBOX.WS.W.0003.261124T1500Z-261125T1200Z/")]
    assert hazard_for(event="Special statement", parameters=vtec)[0] == "winter_storm"


# --- who may post, and hostile input -----------------------------------------------------------


def test_inbox_needs_a_manager_or_admin_token(auth, client):
    """No token is a 401, a bad token a 401, an agent's token a 403, a browser session a 401."""
    body = cap_alert("auth-1")
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = post_cap(client, headers, body)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
    for role in (Role.AGENT, Role.STAKEHOLDER):
        response = post_cap(client, bearer(auth, role), body)
        assert response.status_code == 403
        assert response.json["error"]["code"] == "forbidden"
    auth.login_as(Role.MANAGER)
    assert post_cap(client, {}, body).status_code == 401


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol4;</identifier></alert>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""
XXE_NETWORK = b"""<?xml version="1.0"?>
<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd"><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>"""


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (BILLION_LAUGHS, 400, "dtd_forbidden"),
        (XXE, 400, "dtd_forbidden"),
        (XXE_NETWORK, 400, "dtd_forbidden"),
        (b"", 400, "empty_body"),
        (b"<alert", 400, "bad_xml"),
        (b"\xff\xfe\x00garbage", 400, "bad_xml"),
        (b"<alert>&undefined;</alert>", 400, "bad_xml"),
        (b"<div>" * 5000, 400, "bad_xml"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"/>', 422, "wrong_namespace"),
        (b'<alert xmlns="http://www.incident.com/cap/1.0"/>', 422, "wrong_namespace"),
        (b"<alert/>", 422, "wrong_namespace"),
        (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>', 422, "invalid_cap"),
        (b"x" * (1024 * 1024 + 1), 413, "too_large"),
    ],
    ids=[
        "billion-laughs",
        "xxe-file",
        "xxe-network",
        "empty",
        "truncated",
        "binary",
        "undefined-entity",
        "deep-nesting",
        "atom-feed",
        "cap-1.0",
        "no-namespace",
        "empty-alert",
        "huge",
    ],
)
def test_hostile_or_broken_xml_is_refused_in_json(auth, client, store, body, status, code):
    """Attacks and junk get a 4xx naming the problem, never a 500, and open nothing."""
    response = post_cap(client, bearer(auth), body)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.json["error"]["code"] == code
    assert "root:" not in response.get_data(as_text=True)
    assert Events(store).list() == []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.from_regex(
            r"<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1\.[12]\">[<>a-z/&;]{0,80}", fullmatch=True
        ).map(str.encode),
    )
)
def test_no_input_is_a_server_error(auth, client, body):
    """Whatever bytes arrive, the inbox answers 4xx JSON."""
    response = post_cap(client, bearer(auth), body)
    assert 400 <= response.status_code < 500
    assert response.json["error"]["code"]
