"""CAP at the moment of change: published without any read, from public text only, valid for
the OASIS schema and an independent CAP parser, and indexed revision by revision in Atom."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import feedparser
import pytest
import redis
from cap_tools.models import Alert as ParsedAlert
from lxml import etree
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.parsers.config import ParserConfig

from crisis_console import clock, scheduler
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.services.announcements import Announcements
from crisis_console.services.cap_feed import GEOCODE_ZIP, CapFeed, CapSettings, Subject, publisher
from crisis_console.services.events import Events
from crisis_console.services.lines import Lines
from crisis_console.services.scripts import Scripts
from crisis_console.store import Store
from crisis_console.subscribers import Subscribers
from tests.helpers import ApiDesk
from tests.test_cap import ATOM, CAP, SHARED_CAP, declared_event, references, text, triplet, valid_cap

pytestmark = pytest.mark.skipif(not SHARED_CAP.is_dir(), reason=f"{SHARED_CAP} (shared CAP data) is missing")

MARKER = "Internal only: the zebra password is 7741, never read this to a caller."
CAP_NS = CAP["c"]


@pytest.fixture(scope="module")
def cap12() -> etree.XMLSchema:
    """The OASIS CAP 1.2 schema from the shared data folder."""
    return etree.XMLSchema(etree.parse(str(next(SHARED_CAP.glob("*cap12.xsd")))))


@pytest.fixture
def store(app) -> Store:
    """The app's keys through a store object of their own, whose changes no subscriber hears:
    these tests publish by calling publish_changes as the subscriber would, at the times they
    choose (the app's own store may have the CAP publisher connected)."""
    return Store(app.extensions[STORE_EXTENSION].redis, app.config["CRISIS_KEY_PREFIX"])


@pytest.fixture
def feed(app, store) -> CapFeed:
    """The feed service as the subscriber builds it, from the app's settings."""
    return CapFeed(store, CapSettings.from_config(app.config))


@pytest.fixture
def desk(auth, client) -> ApiDesk:
    """An admin and two managers (writer, reviewer) calling the JSON API with tokens."""
    return ApiDesk(auth, client)


def parsed(body: bytes) -> ParsedAlert:
    """Parse a CAP document with cap-tools (xsData bindings of CAP 1.2), refusing anything unknown."""
    return XmlParser(config=ParserConfig(fail_on_unknown_properties=True)).from_bytes(body, ParsedAlert)


def documents(store: Store, subject: str) -> list[bytes]:
    """Return every published document of a subject, oldest first."""
    return [store.cap.document(subject, h["revision"]) for h in store.cap.history(subject)]


def sent_at(root: etree._Element) -> datetime:
    """Return a message's ``sent`` as a moment."""
    return clock.parse_iso(text(root, "c:sent"))


def approved_script(store: Store, event_id: int, **fields) -> int:
    """Write a script for an event and have a second manager approve it (two-person rule)."""
    scripts = Scripts(store)
    data = {"title": "Where to go", "topic": "Safety", "body": "Go to **higher ground**.", **fields}
    script = scripts.create({**data, "event_id": event_id}, actor="writer")
    scripts.act(script.id, "submit", actor="writer")
    scripts.act(script.id, "approve", actor="reviewer")
    return script.id


def near(moment: datetime, expected: datetime) -> bool:
    """Return whether a CAP time (whole seconds) names ``expected``, within a second."""
    return abs((moment - expected).total_seconds()) <= 1


# --- publishing on change ------------------------------------------------------------------


def test_a_declaration_is_published_at_once_without_any_read(feed, store, cap12):
    """publish_changes, as the subscriber calls it, writes the Alert with sent = the change's time."""
    event_id = declared_event(store)
    declared = clock.parse_iso(Events(store).require(event_id).declared_at)
    [header] = feed.publish_changes()
    assert (header["subject"], header["revision"], header["msg_type"]) == (f"event:{event_id}", 1, "Alert")
    [body] = documents(store, f"event:{event_id}")
    root = valid_cap(cap12, body)
    assert near(sent_at(root), declared)
    assert feed.publish_changes() == []  # nothing changed, nothing new

    script_id = approved_script(store, event_id)
    approved = clock.now()
    [update] = feed.publish_changes()
    assert (update["revision"], update["msg_type"], update["scripts"]) == (2, "Update", {str(script_id): 1})
    root = valid_cap(cap12, store.cap.document(f"event:{event_id}", 2))
    assert near(sent_at(root), approved)
    assert "higher ground" in text(root, "c:info/c:instruction")


def test_the_subscriber_publishes_each_change_as_it_is_made(app, store, cap12):
    """With the CAP publisher among a store's subscribers, the services' own signals publish:
    declaring, approving a script and standing down each leave a message at once, no read."""
    subscribers = Subscribers(publishers=[publisher(app.config)]).connect(store)
    events = Events(store)
    draft = events.create({"name": "Ice", "kind": "winter_storm", "severity": "moderate"}, actor="m")
    subject = f"event:{draft.id}"
    assert store.cap.history(subject) == []  # a draft is not news
    declared = clock.parse_iso(events.declare(draft.id, actor="m").declared_at)
    [alert] = store.cap.history(subject)
    assert (alert["msg_type"], near(clock.parse_iso(alert["sent"]), declared)) == ("Alert", True)

    script_id = approved_script(store, draft.id, summary="Stay off the roads tonight.")
    approved = clock.now()
    update = store.cap.last(subject)
    assert (update["msg_type"], update["scripts"]) == ("Update", {str(script_id): 1})
    assert near(clock.parse_iso(update["sent"]), approved)
    root = valid_cap(cap12, store.cap.document(subject, update["revision"]))
    assert "Stay off the roads tonight." in text(root, "c:info/c:instruction")

    closed = clock.parse_iso(events.stand_down(draft.id, actor="m").closed_at)
    cancel = store.cap.last(subject)
    assert (cancel["msg_type"], near(clock.parse_iso(cancel["sent"]), closed)) == ("Cancel", True)
    assert [h["msg_type"] for h in store.cap.history(subject)] == ["Alert", "Update", "Cancel"]
    del subscribers  # the signals hold receivers weakly: kept alive until here


def test_processes_publishing_the_same_change_at_once_publish_it_once(app, redis_url, store):
    """Eight processes calling publish_changes together publish each revision exactly once."""
    event_id = declared_event(store)
    settings = CapSettings.from_config(app.config)
    prefix = app.config["CRISIS_KEY_PREFIX"]

    def race() -> list[dict]:
        clients = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(8)]
        barrier = threading.Barrier(len(clients))
        published: list[dict] = []

        def publish(client: redis.Redis) -> None:
            feed = CapFeed(Store(client, prefix), settings)
            barrier.wait()
            published.extend(feed.publish_changes())

        threads = [threading.Thread(target=publish, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for client in clients:
            client.close()
        return published

    assert [h["revision"] for h in race()] == [1]
    Events(store).update(event_id, {"severity": "extreme"}, actor="m")
    assert [(h["revision"], h["msg_type"]) for h in race()] == [(2, "Update")]
    assert [h["revision"] for h in store.cap.history(f"event:{event_id}")] == [1, 2]
    audited = [e for e in store.audit.latest(50) if e["action"] == "cap.published"]
    assert len(audited) == 2


def test_a_stale_read_never_republishes_older_content(store, feed):
    """A process that read the world before a change, and publishes after another process
    published that change, composes again under WATCH and publishes nothing."""
    event_id = declared_event(store)
    subject = Subject("event", event_id)
    feed.publish_changes()
    stale = feed._world(clock.now())  # read before the change
    Events(store).update(event_id, {"severity": "extreme"}, actor="m")
    [update] = feed.publish_changes()
    assert feed._sync(subject, stale) == (update, False)
    assert [h["severity"] for h in store.cap.history(subject.key)] == ["Severe", "Extreme"]


def test_a_scheduled_announcement_is_an_alert_at_its_start_and_a_cancel_at_its_end(feed, store, cap12):
    """Driven by the scheduler's passes (which send the announcement signals), the announcement's
    message appears when callers start hearing it and is cancelled when it stops, with those times."""
    event_id = declared_event(store)
    line = Lines(store).create(
        {"number": "+16175550142", "name": "311", "route": {"type": "dial", "number": "+16175550199"}},
        actor="admin",
    )
    starts = clock.now().replace(microsecond=0) + timedelta(minutes=10)
    ends = starts + timedelta(minutes=30)
    service = Announcements(store)
    announcement = service.create(
        {
            "line_id": line.id,
            "messages": {"en": "Shelters open at noon."},
            "starts_at": clock.iso(starts),
            "ends_at": clock.iso(ends),
        },
        actor="writer",
    )
    for action, actor in (("submit", "writer"), ("approve", "reviewer"), ("activate", "writer")):
        service.act(announcement.id, action, actor=actor)
    subject = f"announcement:{announcement.id}"
    assert [h["subject"] for h in feed.publish_changes()] == [f"event:{event_id}"]
    assert store.cap.history(subject) == []  # activated ahead of its start: nothing on air yet

    at_start = starts + timedelta(seconds=2)
    scheduler.run_pass(store, now=at_start)
    published = {h["subject"]: h for h in feed.publish_changes(now=at_start)}
    assert published[subject]["msg_type"] == "Alert"
    assert published[f"event:{event_id}"]["msg_type"] == "Update"
    alert = valid_cap(cap12, store.cap.document(subject, 1))
    assert sent_at(alert) == at_start
    assert text(alert, "c:info/c:effective") == starts.strftime("%Y-%m-%dT%H:%M:%S-00:00")
    assert text(alert, "c:info/c:expires") == ends.strftime("%Y-%m-%dT%H:%M:%S-00:00")
    event_update = valid_cap(cap12, store.cap.document(f"event:{event_id}", 2))
    assert "hear: Shelters open at noon." in text(event_update, "c:info/c:description")
    # The event's information lapses with the phone message it describes.
    assert text(event_update, "c:info/c:expires") == text(alert, "c:info/c:expires")

    at_end = ends + timedelta(seconds=1)
    store.redis.delete(store.keys.scheduler_lock())
    assert scheduler.run_pass(store, now=at_end) == [announcement.id]
    published = {h["subject"]: h for h in feed.publish_changes(now=at_end)}
    assert published[subject]["msg_type"] == "Cancel"
    cancel = valid_cap(cap12, store.cap.document(subject, 2))
    assert sent_at(cancel) == at_end
    assert references(cancel) == [triplet(alert)]
    after = valid_cap(cap12, store.cap.document(f"event:{event_id}", 3))
    assert text(after, "c:msgType") == "Update"
    assert "hear:" not in text(after, "c:info/c:description")
    assert text(after, "c:info/c:expires") == ""
    for body in documents(store, subject) + documents(store, f"event:{event_id}"):
        parsed(body)


def test_reads_still_publish_a_change_nobody_announced(client, store):
    """A change whose signal was lost (Redis flickered) is published by the next read of the feed."""
    event_id = declared_event(store)
    assert store.cap.history(f"event:{event_id}") == []
    assert client.get("/cap/v1/alerts.xml").status_code == 200
    assert [h["msg_type"] for h in store.cap.history(f"event:{event_id}")] == ["Alert"]


# --- public text only -----------------------------------------------------------------------


def test_agent_notes_never_reach_a_cap_document_or_the_feed(desk, client, store, feed, cap12):
    """A marker planted in agent notes is in no CAP revision and not in the Atom index; the
    public summary and body are the instruction, and a notes-only revision publishes nothing."""
    event = desk.post(
        "writer", "/events", {"name": "Ice storm", "kind": "winter_storm", "severity": "severe"}
    )
    event_id = event.json["id"]
    assert desk.post("writer", f"/events/{event_id}/declare").status_code == 200
    ids = []
    for language, summary in (
        ("en", "Stay home tonight; warming centres are open."),
        ("es", "Quédese en casa esta noche; los centros de calor están abiertos."),
    ):
        created = desk.post(
            "writer",
            "/scripts",
            {
                "title": "Ice storm" if language == "en" else "Tormenta de hielo",
                "topic": "Safety",
                "language": language,
                "summary": summary,
                "body": "Call **311** for a ride to a warming centre.",
                "agent_notes": f"{MARKER}\n\n- Do not promise power restoration times.",
                "event_id": event_id,
                **({"translation_of": ids[0]} if ids else {}),
            },
        )
        assert created.status_code == 201, created.json
        ids.append(created.json["id"])
        assert desk.post("writer", f"/scripts/{ids[-1]}/submit").status_code == 200
        assert desk.post("writer", f"/scripts/{ids[-1]}/approve").status_code == 403  # two-person rule
        assert desk.post("reviewer", f"/scripts/{ids[-1]}/approve").status_code == 200
    # Through the API the app's own subscribers may have published already: publishing again
    # is harmless, and what counts is the newest message, whichever process wrote it.
    subject = f"event:{event_id}"
    feed.publish_changes()
    latest = store.cap.last(subject)
    assert latest["scripts"] == {str(ids[0]): 1, str(ids[1]): 1}
    root = valid_cap(cap12, store.cap.document(subject, latest["revision"]))
    english, spanish = root.findall("c:info", CAP)
    assert text(english, "c:instruction") == (
        "Ice storm\nStay home tonight; warming centres are open.\nCall 311 for a ride to a warming centre."
    )
    assert "Quédese en casa" in text(spanish, "c:instruction")

    # A new version that changes only the agent notes changes nothing the public sees.
    assert desk.patch("writer", f"/scripts/{ids[0]}", {"agent_notes": MARKER + " (v2)"}).status_code == 200
    assert desk.post("writer", f"/scripts/{ids[0]}/submit").status_code == 200
    assert desk.post("reviewer", f"/scripts/{ids[0]}/approve").status_code == 200
    feed.publish_changes()
    assert store.cap.last(subject) == latest
    status = feed.status(event_id)
    assert status["up_to_date"] is True
    # The message says word for word what version 2 says in public, and was composed from 1.
    assert (status["scripts"], status["published_scripts"]) == (
        {ids[0]: 2, ids[1]: 1},
        {ids[0]: 1, ids[1]: 1},
    )

    edited = desk.patch("writer", f"/scripts/{ids[0]}", {"summary": "Stay home; centres open."})
    assert edited.status_code == 200
    assert desk.post("writer", f"/scripts/{ids[0]}/submit").status_code == 200
    feed.publish_changes()
    assert store.cap.last(subject) == latest  # a draft is not public
    assert desk.post("reviewer", f"/scripts/{ids[0]}/approve").status_code == 200
    feed.publish_changes()
    update = store.cap.last(subject)
    assert (update["msg_type"], update["scripts"]) == ("Update", {str(ids[0]): 3, str(ids[1]): 1})
    assert desk.post("writer", f"/events/{event_id}/stand-down").status_code == 200
    feed.publish_changes()
    assert store.cap.last(subject)["msg_type"] == "Cancel"

    bodies = documents(store, subject)
    assert len(bodies) >= 3  # Alert, the Update and the Cancel, at least
    for body in bodies:
        valid_cap(cap12, body)
        parsed(body)
        assert MARKER.encode() not in body and b"zebra" not in body and b"Do not promise" not in body
    atom = client.get("/cap/v1/alerts.xml").data
    assert b"zebra" not in atom and b"Do not promise" not in atom
    for link in etree.fromstring(atom).iterfind("a:entry/a:link", ATOM):
        served = client.get(link.get("href"))
        assert served.status_code == 200 and b"zebra" not in served.data


# --- fields and validity ------------------------------------------------------------------


def test_fields_map_the_event_and_validate_for_schema_and_parser(app, feed, store, cap12):
    """Geocodes for ZIP areas, <web> to the public page, expires from the scripts, both validators."""
    app.config["PUBLIC_BASE_URL"] = "https://311.example.gov"
    feed = CapFeed(store, CapSettings.from_config(app.config))
    event_id = declared_event(
        store, areas=["02128", "East Boston", "02129-1234"], details={"website": "https://city.example/flood"}
    )
    soon = (clock.now() + timedelta(hours=6)).replace(microsecond=0)
    approved_script(store, event_id, expires_at=clock.iso(soon + timedelta(hours=1)))
    approved_script(store, event_id, title="Sandbags", expires_at=clock.iso(soon))
    feed.publish_changes()
    body = store.cap.document(f"event:{event_id}", 1)
    root = valid_cap(cap12, body)
    info = root.find("c:info", CAP)
    assert text(info, "c:web") == f"https://311.example.gov/public/{event_id}"
    assert text(info, "c:expires") == soon.strftime("%Y-%m-%dT%H:%M:%S-00:00")  # the earliest script's
    declared = clock.parse_iso(Events(store).require(event_id).declared_at)
    assert text(info, "c:effective") == declared.strftime("%Y-%m-%dT%H:%M:%S-00:00")
    geocodes = [(text(g, "c:valueName"), text(g, "c:value")) for g in info.iterfind("c:area/c:geocode", CAP)]
    assert geocodes == [(GEOCODE_ZIP, "02128"), (GEOCODE_ZIP, "02129-1234")]
    assert (text(info, "c:urgency"), text(info, "c:severity"), text(info, "c:certainty")) == (
        "Immediate",
        "Severe",
        "Observed",
    )
    assert text(info, "c:category") == "Met"

    alert = parsed(body)
    assert alert.identifier == text(root, "c:identifier")
    assert alert.msg_type.value == "Alert" and alert.status.value == "Actual"
    [area] = alert.infos[0].areas
    assert area.geocodes_to_dict().getall(GEOCODE_ZIP) == ["02128", "02129-1234"]
    assert alert.infos[0].web == f"https://311.example.gov/public/{event_id}"

    # A drill is on the public page only when it says so; otherwise <web> is its website.
    hidden = declared_event(
        store, name="Drill", exercise=True, details={"website": "https://city.example/drill"}
    )
    shown = declared_event(store, name="Open drill", exercise=True, publish_drill=True)
    feed.publish_changes()
    webs = {
        event: text(valid_cap(cap12, store.cap.document(f"event:{event}", 1)), "c:info/c:web")
        for event in (hidden, shown)
    }
    assert webs == {hidden: "https://city.example/drill", shown: f"https://311.example.gov/public/{shown}"}

    # Without a public base URL the event's own website is the <web>.
    app.config["PUBLIC_BASE_URL"] = None
    other = declared_event(store, name="Second", details={"website": "https://city.example/flood"})
    CapFeed(store, CapSettings.from_config(app.config)).publish_changes()
    info = valid_cap(cap12, store.cap.document(f"event:{other}", 1)).find("c:info", CAP)
    assert text(info, "c:web") == "https://city.example/flood"
    assert text(info, "c:expires") == ""  # no script, no phone message: unknown, left out


def test_our_shared_examples_parser_check_is_strict(cap12):
    """The independent parser refuses what the schema refuses, so passing it means something."""
    invalid = next(SHARED_CAP.glob("*invalid.cap")).read_bytes()
    assert not cap12.validate(etree.fromstring(invalid))
    with pytest.raises(Exception):  # noqa: B017 - xsData raises a TypeError for the missing scope
        parsed(invalid)
    weather = next(SHARED_CAP.glob("*thunderstorm.cap")).read_bytes()
    assert parsed(weather).infos


# --- the Atom index ---------------------------------------------------------------------------


def test_the_atom_index_lists_every_revision_with_the_nws_cap_fields(client, store, feed, cap12):
    """Alert, Update and Cancel each have an entry (published = updated = sent) with the cap: fields."""
    event_id = declared_event(store, areas=["02128", "East Boston"])
    feed.publish_changes()
    approved_script(store, event_id, expires_at=clock.iso(clock.now() + timedelta(hours=2)))
    feed.publish_changes()
    Events(store).stand_down(event_id, actor="m")
    feed.publish_changes()

    response = client.get("/cap/v1/alerts.xml")
    root = etree.fromstring(response.data)
    entries = root.findall("a:entry", ATOM)
    headers = list(reversed(store.cap.history(f"event:{event_id}")))
    assert [e.findtext("a:id", "", ATOM) for e in entries] == [h["identifier"] for h in headers]
    assert [e.findtext("cap:msgType", "", {"cap": CAP_NS}) for e in entries] == ["Cancel", "Update", "Alert"]
    assert root.findtext("a:updated", "", ATOM) == entries[0].findtext("a:updated", "", ATOM)
    for entry, header in zip(entries, headers, strict=True):
        link = entry.find("a:link", ATOM).get("href")
        assert link.endswith(f"/cap/v1/alerts/event-{event_id}-{header['revision']}.xml")
        served = client.get(link)
        assert "max-age" in served.headers["Cache-Control"]  # a revision never changes
        document = valid_cap(cap12, served.data)
        assert text(document, "c:identifier") == header["identifier"]
        published = entry.findtext("a:published", "", ATOM)
        assert published == entry.findtext("a:updated", "", ATOM)
        assert clock.parse_iso(published) == sent_at(document)
        fields = {
            child.tag.split("}")[1]: child.text
            for child in entry
            if child.tag.startswith(f"{{{CAP_NS}}}") and child.text
        }
        info = document.find("c:info", CAP)
        for name in ("event", "effective", "status", "msgType", "urgency", "severity", "certainty"):
            source = document if name in ("status", "msgType") else info
            assert fields[name] == text(source, f"c:{name}"), name
        assert fields["category"] == "Met"
        assert fields["areaDesc"] == "02128; East Boston"
        assert fields.get("expires", "") == text(info, "c:expires")
        [geocode] = entry.findall("cap:geocode", {"cap": CAP_NS})
        assert [c.text for c in geocode] == [GEOCODE_ZIP, "02128"]
    assert entries[1].findtext("cap:expires", "", {"cap": CAP_NS})  # the Update carries the script's expiry

    reader = feedparser.parse(response.data)
    assert not reader.bozo, reader.get("bozo_exception")
    assert [e.id for e in reader.entries] == [h["identifier"] for h in headers]
    for item in reader.entries:
        assert item.published == item.updated
        assert [link.href.rsplit("/", 1)[1] for link in item.links] == [
            f"event-{event_id}-{item.id.rsplit(':', 1)[1]}.xml"
        ]


def test_recently_ended_subjects_stay_listed_then_leave(store, feed):
    """The index keeps every revision of an ended event for a day, then drops the whole chain."""
    event_id = declared_event(store)
    feed.publish_changes()
    Events(store).stand_down(event_id, actor="m")
    feed.publish_changes()
    later = clock.now() + timedelta(hours=23)
    assert [h["msg_type"] for _s, h in feed.index(later)] == ["Cancel", "Alert"]
    assert feed.index(clock.now() + timedelta(hours=25)) == []
    assert feed.status(event_id)["msg_type"] == "Cancel"
    assert Subject("event", event_id).slug == f"event-{event_id}"


def test_status_says_what_cap_carries_for_the_channel_panel(store, feed):
    """status() names the revision, its time and type, the script versions, and whether it lags."""
    event_id = declared_event(store)
    assert feed.status(event_id) is None
    feed.publish_changes()
    script_id = approved_script(store, event_id)
    lagging = feed.status(event_id)
    assert (lagging["revision"], lagging["msg_type"], lagging["scripts"], lagging["up_to_date"]) == (
        1,
        "Alert",
        {},
        False,
    )
    feed.publish_changes()
    current = feed.status(event_id)
    assert (current["revision"], current["slug"], current["scripts"], current["up_to_date"]) == (
        2,
        f"event-{event_id}-2",
        {script_id: 1},
        True,
    )
    assert current["sent"].endswith("-00:00")
