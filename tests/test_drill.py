"""Drill mode: test lines, exercise labels, milestones and the timing report."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest

from crisis_console import clock
from crisis_console.cli import cli
from crisis_console.roles import Role
from crisis_console.services.events import Events
from crisis_console.services.milestones import MILESTONES, Milestones, human_duration
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, sign_in
from tests.helpers import ApiDesk, quiet
from tests.test_pushes import Agent, Api

LIVE = "+16175550311"
TEST = "+16175550999"
ROUTE = {"type": "dial", "number": "+16175550100"}


class Desk(ApiDesk):
    """An admin, two managers, a stakeholder and an agent calling the JSON API with tokens."""

    STAFF = (*ApiDesk.STAFF, (Role.STAKEHOLDER, "stakeholder"), (Role.AGENT, "agent"))

    def line(self, number: str, **extra) -> dict:
        """Add a line."""
        body = {"number": number, "name": f"line {number[-4:]}", "route": ROUTE, **extra}
        response = self.post("admin", "/lines", body)
        assert response.status_code == 201, response.json
        return response.json

    def event(self, name: str, *, exercise: bool, declare: bool = True) -> dict:
        """Create (and declare) an event."""
        body = {"name": name, "kind": "flood", "severity": "severe", "exercise": exercise}
        event = self.post("writer", "/events", body).json
        if declare:
            event = self.post("writer", f"/events/{event['id']}/declare").json
        return event

    def approved_announcement(self, line_id: int, **extra) -> dict:
        """Write and approve an announcement (not yet active)."""
        body = {"line_id": line_id, "messages": {"en": "This is a drill of the flood message."}, **extra}
        created = self.post("writer", "/announcements", body)
        assert created.status_code == 201, created.json
        self.post("writer", f"/announcements/{created.json['id']}/submit")
        approved = self.post("reviewer", f"/announcements/{created.json['id']}/approve")
        assert approved.status_code == 200, approved.json
        return approved.json


@pytest.fixture
def desk(auth, client):
    """Staff to set up lines, events and announcements."""
    return Desk(auth, client)


# --- test lines ----------------------------------------------------------------------------


def test_a_line_is_live_unless_flagged_as_a_test_line(desk, auth, client):
    """``test`` defaults to false, is set at creation, listed by the API and labelled on the page."""
    assert desk.line(LIVE)["test"] is False
    assert desk.line(TEST, test=True)["test"] is True
    listed = {line["number"]: line["test"] for line in desk.get("admin", "/lines").json["lines"]}
    assert listed == {LIVE: False, TEST: True}
    bad = desk.post(
        "admin", "/lines", {"number": "+16175550998", "name": "x", "route": ROUTE, "test": "maybe"}
    )
    assert bad.status_code == 422 and bad.json["error"]["field"] == "test"
    auth.login_as(Role.ADMIN)
    page = client.get("/admin/lines").get_data(as_text=True)
    assert page.count("TEST LINE") == 1


# --- exercise announcements ----------------------------------------------------------------


def test_an_exercise_announcement_is_refused_on_a_live_line(desk):
    """Tied to an exercise event: 409 exercise_on_live_line naming line_id; fine on a test line."""
    drill = desk.event("Harbor flood drill", exercise=True)
    live, test = desk.line(LIVE), desk.line(TEST, test=True)
    on_live = desk.approved_announcement(live["id"], event_id=drill["id"])
    assert on_live["exercise"] is True and on_live["event_id"] == drill["id"]
    refused = desk.post("writer", f"/announcements/{on_live['id']}/activate")
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "exercise_on_live_line"
    assert refused.json["error"]["field"] == "line_id"
    assert desk.get("writer", f"/announcements/{on_live['id']}").json["state"] == "approved"
    on_test = desk.approved_announcement(test["id"], event_id=drill["id"])
    activated = desk.post("writer", f"/announcements/{on_test['id']}/activate")
    assert activated.status_code == 200 and activated.json["state"] == "active"


def test_a_line_can_be_renamed_and_flagged_but_a_running_drill_keeps_its_test_line(desk, auth, client):
    """PATCH /lines/{id}: name and test flag change (audited, the voice cache moves on); a test
    line with a drill's announcement live cannot become a live line; its number cannot change."""
    drill = desk.event("Storm drill", exercise=True)
    line = desk.line(TEST)
    changed = desk.patch("admin", f"/lines/{line['id']}", {"name": "Drill hotline", "test": True})
    assert (
        changed.status_code == 200
        and changed.json["name"] == "Drill hotline"
        and changed.json["test"] is True
    )
    on_test = desk.approved_announcement(line["id"], event_id=drill["id"])
    desk.post("writer", f"/announcements/{on_test['id']}/activate")
    refused = desk.patch("admin", f"/lines/{line['id']}", {"test": False})
    assert refused.status_code == 409 and refused.json["error"]["field"] == "test"
    number = desk.patch("admin", f"/lines/{line['id']}", {"number": "+16175550000"})
    assert number.status_code == 422 and number.json["error"]["field"] == "number"
    assert desk.patch("writer", f"/lines/{line['id']}", {"name": "x"}).status_code == 403
    assert desk.patch("admin", "/lines/999", {"name": "x"}).status_code == 404
    desk.post("writer", f"/announcements/{on_test['id']}/end")
    assert desk.patch("admin", f"/lines/{line['id']}", {"test": False}).json["test"] is False


def test_written_while_only_exercises_run_it_is_an_exercise(desk, auth, client):
    """Without an event, an announcement written while only drills are active is a drill's."""
    desk.event("Heat drill", exercise=True)
    live, test = desk.line(LIVE), desk.line(TEST, test=True)
    drill_one = desk.approved_announcement(live["id"])
    assert drill_one["exercise"] is True and drill_one["event_id"] is None
    assert desk.post("writer", f"/announcements/{drill_one['id']}/activate").status_code == 409
    # A real announcement on a test line is allowed, and the pages say it is on a test line.
    real = desk.event("Real heat wave", exercise=False)
    on_test = desk.approved_announcement(test["id"], event_id=real["id"])
    assert on_test["exercise"] is False
    assert desk.post("writer", f"/announcements/{on_test['id']}/activate").status_code == 200
    auth.login_as(Role.MANAGER)
    assert "TEST LINE" in client.get("/manager/phone").get_data(as_text=True)
    assert "TEST LINE" in client.get("/dashboard").get_data(as_text=True)


def test_an_announcements_event_must_exist(desk):
    """event_id names an existing event, else 422 naming event_id."""
    line = desk.line(LIVE)
    for value in (9999, "abc", True):
        body = {"line_id": line["id"], "messages": {"en": "Hello."}, "event_id": value}
        response = desk.post("writer", "/announcements", body)
        assert response.status_code == 422, value
        assert response.json["error"]["field"] == "event_id"


def test_live_lines_still_play_real_announcements_during_a_drill(desk, twilio):
    """The voice webhook answers a live line's real announcement as before, drill or not."""
    desk.event("Storm drill", exercise=True)
    real = desk.event("Storm", exercise=False)
    live = desk.line(LIVE)
    announcement = desk.approved_announcement(live["id"], event_id=real["id"])
    assert desk.post("writer", f"/announcements/{announcement['id']}/activate").status_code == 200
    answer = twilio.post("/twilio/voice", {"CallSid": "CA1", "From": "+16175550123", "To": LIVE})
    assert answer.status_code == 200 and "This is a drill of the flood message." in answer.get_data(
        as_text=True
    )


# --- milestones and the report ------------------------------------------------------------


def declared(store, name: str, *, exercise: bool = True):
    """Create and declare an event through the service (its alerts are not under test)."""
    events = Events(quiet(store))
    event = events.create(
        {"name": name, "kind": "flood", "severity": "severe", "exercise": exercise}, actor="m"
    )
    return events.declare(event.id, actor="m")


def test_a_milestone_keeps_the_first_time_it_was_reached(store):
    """A second call never moves a milestone; unknown names are refused."""
    event = declared(store, "Spike drill")
    first = clock.parse_iso(event.declared_at) + timedelta(seconds=30)
    milestones = Milestones(store)
    milestones.reached("first_spike", at=first)
    milestones.reached("first_spike", at=first + timedelta(minutes=5))
    milestones.reached("first_spike")
    assert milestones.times(event.id)["first_spike"] == clock.iso(first)
    assert milestones.times(event.id)["declared"] == event.declared_at
    with pytest.raises(ValueError, match="unknown milestone"):
        milestones.reached("lunch")


def test_milestones_count_only_for_running_events(store):
    """By default every active event; drafts and closed events are left alone."""
    running, other = declared(store, "Running"), declared(store, "Also running")
    events = Events(store)
    draft = events.create({"name": "Draft", "kind": "flood", "severity": "minor"}, actor="m")
    closed = events.stand_down(declared(store, "Closed").id, actor="m")
    milestones = Milestones(store)
    milestones.reached("first_alert")
    milestones.reached("first_push", event_ids=[running.id, draft.id, closed.id, 9999])
    assert "first_alert" in milestones.times(running.id) and "first_alert" in milestones.times(other.id)
    assert "first_push" in milestones.times(running.id) and "first_push" not in milestones.times(other.id)
    assert milestones.times(draft.id) == {}
    assert set(milestones.times(closed.id)) == {"declared", "stood_down"}


def test_the_report_lists_milestones_in_order_with_durations(store):
    """Fixed order, seconds after declaration, and what is missing."""
    event = declared(store, "Order drill")
    start = clock.parse_iso(event.declared_at)
    milestones = Milestones(store)
    milestones.reached("first_spike", at=start + timedelta(seconds=90))
    milestones.reached("first_push", at=start + timedelta(minutes=4, seconds=12))
    report = milestones.report(event.id)
    assert report["exercise"] is True and report["event"]["name"] == "Order drill"
    assert report["declared_at"] == event.declared_at
    assert [(m["name"], m["after_seconds"]) for m in report["milestones"]] == [
        ("declared", 0.0),
        ("first_push", 252.0),
        ("first_spike", 90.0),
    ]
    assert report["milestones"][1]["label"] == MILESTONES["first_push"]
    assert report["missing"] == ["all_acknowledged", "announcement_live", "first_alert", "stood_down"]


def test_all_acknowledged_waits_for_the_whole_audience(store, auth):
    """The milestone is set by the acknowledgement that completes a push's audience, not before."""
    from crisis_console.services.pushes import Pushes
    from crisis_console.services.scripts import Scripts

    event = declared(store, "Ack drill")
    team = f"ack-{time.monotonic_ns()}"
    first, second = (auth.make_user(Role.AGENT, team=team) for _ in range(2))
    scripts = Scripts(store)
    body = {"title": "Sandbags", "topic": "Safety", "body": "At the depot.", "event_id": event.id}
    script = scripts.create(body, actor="writer")
    scripts.act(script.id, "submit", actor="writer")
    scripts.act(script.id, "approve", actor="reviewer")
    push = Pushes(store).push(script.id, [team], actor="writer")
    assert push["script"]["exercise"] is True
    milestones = Milestones(store)
    assert "first_push" in milestones.times(event.id)
    Pushes(store).receipt(push["id"], first.id, acknowledged=True)
    Pushes(store).receipt(push["id"], second.id, acknowledged=False)
    assert "all_acknowledged" not in milestones.times(event.id)
    Pushes(store).receipt(push["id"], second.id, acknowledged=True)
    assert "all_acknowledged" in milestones.times(event.id)


def test_a_scheduled_announcement_is_live_from_its_start(desk, store):
    """Activated ahead of its start, it counts as live at ``starts_at``, recorded by the scheduler."""
    from crisis_console import scheduler

    event = desk.event("Scheduled drill", exercise=True)
    line = desk.line(TEST, test=True)
    starts = clock.now() + timedelta(minutes=10)
    announcement = desk.approved_announcement(line["id"], event_id=event["id"], starts_at=clock.iso(starts))
    assert desk.post("writer", f"/announcements/{announcement['id']}/activate").status_code == 200
    assert "announcement_live" not in Milestones(store).times(event["id"])
    scheduler.run_pass(store, now=starts + timedelta(seconds=3))
    assert Milestones(store).times(event["id"])["announcement_live"] == clock.iso(starts)


def test_human_durations():
    """Durations read like a person would say them."""
    assert human_duration(0) == "0 s"
    assert human_duration(45.4) == "45 s"
    assert human_duration(252) == "4 min 12 s"
    assert human_duration(600) == "10 min"
    assert human_duration(3 * 3600 + 300) == "3 h 5 min"
    assert human_duration(None) == "—"


def test_timing_api_page_and_roles(desk, store, auth, client):
    """The API answers managers, stakeholders and admins; the page is a printable table."""
    event = desk.event("Bridge drill", exercise=True)
    start = clock.parse_iso(event["declared_at"])
    Milestones(store).reached("first_push", at=start + timedelta(minutes=4, seconds=12))
    for who in ("writer", "stakeholder", "admin"):
        response = desk.get(who, f"/events/{event['id']}/timing")
        assert response.status_code == 200, who
    assert response.json["milestones"][1]["after_seconds"] == 252.0
    assert desk.get("agent", f"/events/{event['id']}/timing").status_code == 403
    missing = desk.get("writer", "/events/9999/timing")
    assert missing.status_code == 404 and missing.json["error"]["field"] == "event_id"
    auth.login_as(Role.MANAGER)
    console = client.get("/manager").get_data(as_text=True)
    assert f"/manager/events/{event['id']}/timing" in console
    page = client.get(f"/manager/events/{event['id']}/timing").get_data(as_text=True)
    assert "Drill timing report" in page and "EXERCISE" in page and "4 min 12 s" in page
    assert "Not reached:" in page
    assert client.get("/manager/events/9999/timing").status_code == 404


def test_a_real_events_report_is_not_called_a_drill(desk, auth, client):
    """The same report works for real events, titled as an event's."""
    event = desk.event("Real flood", exercise=False)
    auth.login_as(Role.MANAGER)
    page = client.get(f"/manager/events/{event['id']}/timing").get_data(as_text=True)
    assert "Event timing report" in page and "Drill timing report" not in page


def test_drill_report_command(desk, store, runner):
    """``drill report`` prints the table, ``--json`` the API's report; unknown events exit 1."""
    event = desk.event("CLI drill", exercise=True)
    start = clock.parse_iso(event["declared_at"])
    Milestones(store).reached("announcement_live", at=start + timedelta(minutes=4, seconds=12))
    result = runner.invoke(cli, ["drill", "report", str(event["id"])])
    assert result.exit_code == 0, result.output
    assert "Drill timing report: EXERCISE — CLI drill" in result.output
    lines = result.output.splitlines()
    live_row = next(line for line in lines if line.startswith(MILESTONES["announcement_live"]))
    assert live_row.endswith("4 min 12 s")
    assert "Not reached: First script pushed" in result.output
    as_json = runner.invoke(cli, ["drill", "report", str(event["id"]), "--json"])
    report = json.loads(as_json.output)
    # Declaring may also raise an alert (first_alert), depending on the alert rules in force.
    names = [m["name"] for m in report["milestones"] if m["name"] != "first_alert"]
    assert names == ["declared", "announcement_live"]
    unknown = runner.invoke(cli, ["drill", "report", "9999"])
    assert unknown.exit_code == 1 and "No event with id 9999" in unknown.output


# --- the whole chain, on the real server ----------------------------------------------------


@pytest.mark.served
def test_a_whole_drill_is_timed(served_app):
    """Declare a drill, push to its agents, acknowledge, go live on a test line, spike: all timed."""
    writer = Api(served_app, served_app.make_user(Role.MANAGER))
    reviewer = Api(served_app, served_app.make_user(Role.MANAGER))
    admin = Api(served_app, served_app.make_user(Role.ADMIN))
    team = f"drill-{time.monotonic_ns()}"
    agents = [Agent(served_app, team=team), Agent(served_app, team=team)]
    for agent in agents:
        agent.connect()
    event = writer.post(
        "/events", {"name": "Full drill", "kind": "flood", "severity": "severe", "exercise": True}
    )
    event = writer.post(f"/events/{event['id']}/declare")
    try:
        script = writer.post(
            "/scripts",
            {
                "title": "Drill shelters",
                "topic": "Safety",
                "body": "Go to **high ground**.",
                "event_id": event["id"],
            },
        )
        writer.post(f"/scripts/{script['id']}/submit")
        reviewer.post(f"/scripts/{script['id']}/approve")
        push = writer.post(f"/scripts/{script['id']}/push", {"audience": [team]})
        assert push["audience_size"] == 2
        for agent in agents:
            assert agent.wait_for(lambda a=agent: any(p["push_id"] == push["id"] for p in a.pushes))
            message = next(p for p in agent.pushes if p["push_id"] == push["id"])
            assert message["script"]["exercise"] is True
            assert agent.ack(push["id"]) == {"ok": True}

        line = admin.post(
            "/lines",
            {
                "number": f"+1999{time.monotonic_ns() % 10**7:07d}",
                "name": "drill",
                "route": ROUTE,
                "test": True,
            },
        )
        announcement = writer.post(
            "/announcements", {"line_id": line["id"], "messages": {"en": "Drill."}, "event_id": event["id"]}
        )
        writer.post(f"/announcements/{announcement['id']}/submit")
        reviewer.post(f"/announcements/{announcement['id']}/approve")
        writer.post(f"/announcements/{announcement['id']}/activate")
        Milestones(served_app.store).reached("first_spike")
        Milestones(served_app.store).reached("first_alert")
    finally:
        writer.post(f"/events/{event['id']}/stand-down")
        for agent in agents:
            agent.client.disconnect()

    report = writer.get(f"/events/{event['id']}/timing").json()
    assert report["exercise"] is True and report["missing"] == []
    assert [m["name"] for m in report["milestones"]] == list(MILESTONES)
    durations = [m["after_seconds"] for m in report["milestones"]]
    assert all(d is not None and d >= 0 for d in durations), durations
    times = {m["name"]: m["at"] for m in report["milestones"]}
    assert (
        times["first_push"] <= times["all_acknowledged"] <= times["announcement_live"] <= times["stood_down"]
    )


# --- in the browser ----------------------------------------------------------------------------


@pytest.mark.served
@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_an_active_exercise_shows_on_the_agent_page(served_app):
    """The EXERCISE banner appears live when a drill is declared, its script's card says so,
    and the banner goes when the drill stands down."""
    from playwright.sync_api import expect, sync_playwright

    writer = served_app.session_for(served_app.make_user(Role.MANAGER))
    reviewer = served_app.session_for(served_app.make_user(Role.MANAGER))
    team = f"banner-{time.monotonic_ns()}"
    agent = served_app.make_user(Role.AGENT, team=team)
    api = f"{served_app.url}/api/v1"
    body = {"name": "Banner drill", "kind": "flood", "severity": "severe", "exercise": True}
    event = writer.post(f"{api}/events", json=body).json()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            sign_in(page, served_app.url, agent.username)
            expect(page).to_have_url(f"{served_app.url}/agent")
            expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
            expect(page.locator("#exercise-banner")).to_be_hidden()
            declared_event = writer.post(f"{api}/events/{event['id']}/declare")
            assert declared_event.status_code == 200, declared_event.text
            expect(page.locator("#exercise-banner")).to_be_visible(timeout=10_000)
            expect(page.locator("#exercise-banner")).to_contain_text("EXERCISE")
            expect(page.locator("#event-banner")).to_contain_text("EXERCISE — Banner drill")

            script = writer.post(
                f"{api}/scripts",
                json={
                    "title": "Drill script",
                    "topic": "Safety",
                    "body": "Practice.",
                    "event_id": event["id"],
                },
            ).json()
            writer.post(f"{api}/scripts/{script['id']}/submit")
            reviewer.post(f"{api}/scripts/{script['id']}/approve")
            pushed = writer.post(f"{api}/scripts/{script['id']}/push", json={"audience": [team]})
            assert pushed.status_code == 201, pushed.text
            card = page.locator(f'#feed [data-push-id="{pushed.json()["id"]}"]')
            expect(card.locator(".exercise-tag")).to_have_text("EXERCISE", timeout=10_000)

            page.reload()
            expect(page.locator("#exercise-banner")).to_be_visible()
            expect(page.locator("#event-banner")).to_contain_text("EXERCISE — Banner drill")
            expect(card.locator(".exercise-tag")).to_have_text("EXERCISE")
            writer.post(f"{api}/events/{event['id']}/stand-down")
            expect(page.locator("#exercise-banner")).to_be_hidden(timeout=10_000)
        finally:
            if Events(served_app.store).require(event["id"]).status == "active":
                writer.post(f"{api}/events/{event['id']}/stand-down")
            browser.close()
