"""Local time: CRISIS_TIMEZONE for pages, CSV exports and alert texts; the API stays ISO 8601."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.rules import load_folder
from crisis_console import clock, localtime
from crisis_console.alert_hooks import AlertHooks
from crisis_console.app import create_app
from crisis_console.cli import cli
from crisis_console.config import Config, TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts
from crisis_console.services.announcements import Announcements
from crisis_console.services.categories import Categories
from crisis_console.services.events import Events
from crisis_console.services.lines import Lines
from crisis_console.store import Store
from tests.chromium import CHROMIUM, launched, sign_in
from tests.conftest import TWILIO_TOKEN, console_process
from tests.helpers import PASSWORD, AuthActions, unique_name
from tests.servers import free_port

NEW_YORK = ZoneInfo("America/New_York")


# --- the Python helper ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        ("2015-02-09T19:05:00Z", "2015-02-09 14:05 EST"),
        ("2015-03-08T06:59:00.000Z", "2015-03-08 01:59 EST"),  # the last minute of winter time
        ("2015-03-08T07:00:00.000Z", "2015-03-08 03:00 EDT"),  # 2 a.m. does not happen
        ("2015-11-01T05:30:00Z", "2015-11-01 01:30 EDT"),  # 1:30 a.m. happens twice…
        ("2015-11-01T06:30:00Z", "2015-11-01 01:30 EST"),  # …and the abbreviation tells them apart
        ("2015-07-04T01:15:00+00:00", "2015-07-03 21:15 EDT"),  # the local date, not UTC's
        (1423508700, "2015-02-09 14:05 EST"),  # epoch seconds
        (1423508700000, "2015-02-09 14:05 EST"),  # epoch milliseconds
        ("1423508700000", "2015-02-09 14:05 EST"),
        (datetime(2015, 2, 9, 19, 5), "2015-02-09 14:05 EST"),  # naive is UTC, as clock.parse_iso
    ],
)
def test_times_show_on_the_consoles_clock_24_hour_with_the_abbreviation(moment, shown):
    """Across both DST changes, in the zone's own date, from ISO text, datetimes and epochs."""
    assert localtime.format_time(moment, NEW_YORK) == shown


def test_styles_empty_values_and_other_zones():
    """Seconds, time alone, an empty value, a value that is no time, and European abbreviations."""
    berlin = ZoneInfo("Europe/Berlin")
    assert localtime.format_time("2015-02-09T19:05:07Z", NEW_YORK, "seconds") == "2015-02-09 14:05:07 EST"
    assert localtime.format_time("2015-02-09T19:05:07Z", NEW_YORK, "time") == "14:05 EST"
    assert localtime.format_time("2015-02-09T19:05:07Z", berlin) == "2015-02-09 20:05 CET"
    assert localtime.format_time("2015-07-09T19:05:07Z", berlin) == "2015-07-09 21:05 CEST"
    assert localtime.format_time("2015-02-09T19:05:07Z", ZoneInfo("UTC"), "time") == "19:05 UTC"
    assert localtime.format_time("", NEW_YORK) == "" and localtime.format_time(None, NEW_YORK) == ""
    assert localtime.format_time("soon", NEW_YORK) == "soon"  # a page never fails on one field
    assert localtime.input_value("2015-02-09T19:05:00Z", NEW_YORK) == "2015-02-09T14:05"


def test_the_default_is_the_machines_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """TZ first, then /etc/timezone, then the /etc/localtime link; UTC when none names a zone."""
    etc = tmp_path / "etc"
    etc.mkdir()
    link = etc / "localtime"
    assert localtime.machine_zone_name("America/Chicago", link) == "America/Chicago"
    assert localtime.machine_zone_name(":Europe/Paris", link) == "Europe/Paris"
    assert localtime.machine_zone_name("", link) == "UTC"
    zoneinfo = tmp_path / "usr" / "share" / "zoneinfo" / "America"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Denver").write_bytes(b"TZif")
    link.symlink_to(zoneinfo / "Denver")
    assert localtime.machine_zone_name("EST5EDT,M3.2.0,M11.1.0", link) == "America/Denver"
    (etc / "timezone").write_text("Pacific/Auckland\n")
    assert localtime.machine_zone_name("", link) == "Pacific/Auckland"

    monkeypatch.delenv("CRISIS_TIMEZONE", raising=False)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert Config().CRISIS_TIMEZONE == "Asia/Tokyo"
    monkeypatch.setenv("CRISIS_TIMEZONE", "America/New_York")
    assert Config().CRISIS_TIMEZONE == "America/New_York"


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "EST5EDT,M3"])
def test_a_bad_zone_name_is_refused_naming_the_setting(name):
    """No IANA zone by that name (paths included): ZoneError naming CRISIS_TIMEZONE."""
    with pytest.raises(localtime.ZoneError, match=r"^CRISIS_TIMEZONE="):
        localtime.zone(name)


def test_a_bad_zone_stops_start_up_with_one_line(redis_url, prefix, tmp_path, monkeypatch):
    """The app refuses it; serve and worker exit 1 with one line naming the setting, no traceback."""
    from click.testing import CliRunner

    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    with pytest.raises(localtime.ZoneError):
        create_app(TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix, CRISIS_TIMEZONE="Mars/Olympus"))
    env = {"REDIS_URL": redis_url, "CRISIS_KEY_PREFIX": prefix, "CRISIS_TIMEZONE": "Mars/Olympus"}
    for command in (["serve", "--port", str(free_port())], ["worker"]):
        result = CliRunner().invoke(cli, command, env=env)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            "error: CRISIS_TIMEZONE='Mars/Olympus' is not an IANA time zone name "
            "(such as America/New_York or UTC)."
        ]


# --- pages, CSV and alert texts in an app on New York time -----------------------------------------


@pytest.fixture
def ny_app(redis_url: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A console app whose zone is America/New_York (the machine's is another, or UTC)."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    return create_app(
        TestConfig(
            REDIS_URL=redis_url,
            CRISIS_KEY_PREFIX=prefix,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            CRISIS_TIMEZONE="America/New_York",
        )
    )


@pytest.fixture
def ny_client(ny_app):
    """A test client of the New York app."""
    return ny_app.test_client()


@pytest.fixture
def ny_auth(ny_app, ny_client) -> AuthActions:
    """Sign in and out of the New York app."""
    return AuthActions(ny_app, ny_client)


@pytest.fixture
def ny_store(ny_app) -> Store:
    """The New York app's store."""
    return ny_app.extensions[STORE_EXTENSION]


def bearer(auth: AuthActions, role: str) -> dict[str, str]:
    """Return bearer headers for a new user of ``role``."""
    user = auth.make_user(role)
    return {"Authorization": f"Bearer {auth.accounts.create_token(user.username)}"}


def read_csv(response) -> list[dict[str, str]]:
    """Return a CSV download's rows."""
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_pages_show_local_time_and_the_api_stays_iso(ny_store, ny_auth, ny_client):
    """The timing report, the dashboard's event and the page's zone say New York; the API says UTC."""
    ny_auth.login_as(Role.MANAGER)
    events = Events(ny_store)
    event = events.declare(
        events.create({"name": "Blizzard", "kind": "winter_storm", "severity": "severe"}, actor="m").id,
        actor="m",
    )
    declared = localtime.format_time(event.declared_at, NEW_YORK, "seconds")
    timing = ny_client.get(f"/manager/events/{event.id}/timing").get_data(as_text=True)
    assert f"Declared {declared}." in timing and re.search(r" E[SD]T\.", timing)
    dashboard = ny_client.get("/dashboard").get_data(as_text=True)
    assert f"declared {localtime.format_time(event.declared_at, NEW_YORK)}" in dashboard
    assert 'data-timezone="America/New_York"' in dashboard
    assert re.search(r"As of <span id=\"sitrep-as-of\">\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T<", dashboard)
    assert " UTC" not in dashboard
    api = ny_client.get("/api/v1/events?status=active").json["events"][0]
    assert api["declared_at"] == event.declared_at and api["declared_at"].endswith("Z")


def test_records_csv_holds_what_happened_in_the_window_not_what_arrived(ny_store, ny_auth, ny_client):
    """Old contacts received now (a replay) are left out; the export matches the counts export."""
    Categories(ny_store).create({"code": "no_heat", "name": "No heat"})
    agent, manager = bearer(ny_auth, Role.AGENT), bearer(ny_auth, Role.MANAGER)
    now = clock.now()
    complaints = [
        {"category": "no_heat", "occurred_at": clock.iso(now - timedelta(days=10)), "text": "replayed"},
        {"category": "no_heat", "occurred_at": clock.iso(now - timedelta(days=2)), "text": "replayed"},
        {"category": "no_heat", "occurred_at": clock.iso(now - timedelta(hours=2)), "text": "this morning"},
        {"category": "no_heat", "text": "just now"},
    ]
    assert (
        ny_client.post("/api/v1/complaints", json={"complaints": complaints}, headers=agent).json["accepted"]
        == 4
    )
    records = read_csv(ny_client.get("/api/v1/complaints.csv?window=24h", headers=manager))
    assert [r["text"] for r in records] == ["this morning", "just now"]
    counts = read_csv(ny_client.get("/api/v1/trends.csv?window=24h&bucket=1h", headers=manager))
    assert sum(int(r["count"]) for r in counts) == len(records)
    first = records[0]
    assert first["occurred_at"] == clock.iso(now - timedelta(hours=2))  # ISO, UTC, as stored
    assert first["occurred_local"] == localtime.format_time(first["occurred_at"], NEW_YORK, zone_name=False)
    assert first["time_zone"] in ("EST", "EDT")
    assert set(counts[0]) == {"bucket_start", "local_time", "time_zone", "category", "count"}
    assert counts[0]["local_time"] == localtime.format_time(
        counts[0]["bucket_start"], NEW_YORK, zone_name=False
    )


def test_records_csv_window_edges_go_by_the_contacts_time(ny_store, ny_auth, ny_client):
    """The reverse too: received before the window's start but dated inside it (a clock a few
    minutes ahead) is in; received inside the window but dated before its start is out."""
    Categories(ny_store).create({"code": "no_heat", "name": "No heat"})
    agent, manager = bearer(ny_auth, Role.AGENT), bearer(ny_auth, Role.MANAGER)
    received = clock.now()
    batch = [
        {"category": "no_heat", "occurred_at": clock.iso(received - timedelta(minutes=2)), "text": "early"},
        {"category": "no_heat", "occurred_at": clock.iso(received + timedelta(minutes=4)), "text": "ahead"},
    ]
    assert (
        ny_client.post("/api/v1/complaints", json={"complaints": batch}, headers=agent).json["accepted"] == 2
    )
    # The 60 minutes (whole minutes, as the counts) ending at ``at`` start 2 to 3 minutes after
    # the receipt: after "early" happened and before "ahead" did.
    at = received + timedelta(hours=1, minutes=1)
    start = at.replace(second=0, microsecond=0) + timedelta(minutes=1) - timedelta(hours=1)
    assert received - timedelta(minutes=2) < received < start < received + timedelta(minutes=4)
    url = f"/api/v1/complaints.csv?window=60m&at={clock.iso(at)}"
    assert [r["text"] for r in read_csv(ny_client.get(url, headers=manager))] == ["ahead"]
    assert ny_client.get(url + "x", headers=manager).json["error"]["field"] == "at"
    counts = read_csv(
        ny_client.get(f"/api/v1/trends.csv?window=60m&bucket=60m&at={clock.iso(at)}", headers=manager)
    )
    assert sum(int(r["count"]) for r in counts) == 1
    assert (
        ny_client.get("/api/v1/complaints.csv?window=soon", headers=manager).json["error"]["field"]
        == "window"
    )


RULES = """
[[rule]]
id = "spike-local"
trigger = "spike.detected"
recipients = ["role:manager"]
channels = ["console"]
message = "Spike in {category} since {since} (raised {time})"
"""


def test_alert_texts_give_times_on_the_consoles_clock(ny_store, tmp_path: Path):
    """The spike's {since} and the alert's {time} are New York time with the abbreviation."""
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "local.toml").write_text(RULES)
    Categories(ny_store).create({"code": "no_heat", "name": "No heat"})
    hooks = AlertHooks(ny_store, load_folder(folder), zone=NEW_YORK)
    spike = {
        "category": "no_heat",
        "observed": 40,
        "expected": 3.0,
        "score": 12.5,
        "since": "2015-02-09T19:05:00Z",
    }
    hooks.spike(spike)
    [alert] = hooks.alerting.recent()
    match = re.fullmatch(
        r"Spike in No heat since 2015-02-09 14:05 EST \(raised (\d{4}-\d\d-\d\d \d\d:\d\d) (E[SD]T)\)",
        alert["message"],
    )
    assert match, alert["message"]
    raised = localtime.format_time(alert["created_at"], NEW_YORK)
    assert f"{match.group(1)} {match.group(2)}" == raised
    assert alert["values"]["since"] == "2015-02-09T19:05:00Z"  # the stored value stays ISO


def test_the_shipped_spike_rule_says_since_when():
    """The shipped spike message shows when the spike began."""
    [rule] = [
        r
        for r in load_folder(Path(__file__).resolve().parent.parent / "alerts" / "rules").rules
        if r.id == "spike-to-eoc"
    ]
    assert "{since}" in rule.message


# --- in a real browser whose own zone is another -------------------------------------------------

BROWSER_ZONE = "Asia/Tokyo"  # 13 or 14 hours from New York: no hour of the two can be confused


@pytest.fixture(scope="module")
def ny_console(
    redis_url: str, run_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Store]]:
    """The real console on New York time, on a free port."""
    folder = tmp_path_factory.mktemp("ny")
    settings = {"SECRET_KEY": "ny-test-secret", "CRISIS_TIMEZONE": "America/New_York", "TZ": "UTC"}
    with console_process(redis_url, f"{run_prefix}:ny", folder, **settings) as served:
        yield served.url, served.store


@pytest.fixture
def tokyo_page(ny_console):
    """A Chromium page whose own time zone is Tokyo's."""
    with launched() as browser:
        context = browser.new_context(viewport={"width": 1366, "height": 900}, timezone_id=BROWSER_ZONE)
        yield context.new_page()
        context.close()


def new_york_hours_back(hours: int) -> set[str]:
    """Return the New York clock hours ("HH") from ``hours`` ago to now."""
    now = datetime.now(NEW_YORK)
    return {(now - timedelta(hours=h)).strftime("%H") for h in range(hours + 1)}


LOCAL = r"\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T"


@pytest.mark.browser
@pytest.mark.served
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_pages_in_a_browser_elsewhere_show_the_consoles_time(ny_console, tokyo_page):
    """Alert table, live notice, chart axis and legend, and the agent's log line: New York, 24-hour."""
    from playwright.sync_api import expect

    base, store = ny_console
    accounts = Accounts(store)
    manager = accounts.create_user(unique_name("manager"), Role.MANAGER, PASSWORD, actor="test")
    agent = accounts.create_user(unique_name("agent"), Role.AGENT, PASSWORD, actor="test")
    token = accounts.create_token(manager.username, "test", actor="test")
    Categories(store).create({"code": f"downed_wire_{agent.id}", "name": f"Downed wire {agent.id}"})
    import requests

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"

    def declare(name: str) -> None:
        event = api.post(
            f"{base}/api/v1/events", json={"name": name, "kind": "winter_storm", "severity": "severe"}
        )
        assert event.status_code == 201, event.text
        assert api.post(f"{base}/api/v1/events/{event.json()['id']}/declare").status_code == 200

    declare("Blizzard one")  # the alert rules tell managers and stakeholders
    page = tokyo_page
    sign_in(page, base, manager.username)
    page.goto(f"{base}/manager/alerts")
    cell = page.locator("#alerts tbody tr time").first
    expect(cell).to_have_text(re.compile(f"^{LOCAL}$"))
    assert cell.inner_text() == localtime.format_time(cell.get_attribute("datetime"), NEW_YORK)

    # A schedule typed on the console's clock (the browser's is 14 hours ahead), shown on it.
    line = Lines(store).create(
        {
            "number": f"+1617556{agent.id:04d}",
            "name": "Main line",
            "route": {"type": "dial", "number": "+16175550100"},
            "languages": ["en"],
        },
        actor="test",
    )
    page.goto(f"{base}/manager/phone")
    page.locator("#ann-line").select_option(str(line.id))
    page.locator("#ann-starts").fill("2030-01-15T09:00")
    page.locator("#ann-ends").fill("2030-07-15T18:30")
    page.locator("#ann-en").fill("Shelters are open at every high school.")
    page.get_by_role("button", name="Save draft").click()
    row = page.locator(".announcement", has_text="Shelters are open")
    expect(row).to_contain_text("from 2030-01-15 09:00 EST · until 2030-07-15 18:30 EDT")
    [saved] = [a for a in Announcements(store).list() if a.line_id == line.id]
    assert (saved.starts_at, saved.ends_at) == ("2030-01-15T14:00:00.000Z", "2030-07-15T22:30:00.000Z")

    page.goto(f"{base}/dashboard")
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    declare("Blizzard two")  # its notice arrives live and is drawn by the page's script
    notice = page.locator("#notices li", has_text="Blizzard two")
    expect(notice).to_have_text(re.compile(f"^{LOCAL} — "))
    stamp = notice.inner_text().split(" — ")[0]
    assert stamp[11:13] in new_york_hours_back(1)

    chart = page.locator("#chart[data-time-ticks]")
    expect(chart).to_have_count(1)
    ticks = chart.get_attribute("data-time-ticks").split(" | ")
    assert all(re.fullmatch(r"\d\d:\d\d( \d{4}-\d\d-\d\d)?", t) for t in ticks), ticks
    assert {t[:2] for t in ticks} <= new_york_hours_back(7), ticks  # Tokyo's hours would be 13 ahead
    box = page.locator("#chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    legend = page.locator(".u-legend .u-series").first.locator(".u-value")
    expect(legend).to_have_text(re.compile(f"^{LOCAL}$"))
    assert legend.inner_text()[11:13] in new_york_hours_back(7)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, base, agent.username)
    page.locator("#log-category").fill(f"Downed wire {agent.id}")
    page.locator("#log-zip").fill("02124")
    page.keyboard.press("Enter")
    status = page.locator("#log-status")
    expect(status).to_have_text(re.compile(r" at \d\d:\d\d E[SD]T\.$"))
    logged = status.inner_text().rsplit(" at ", 1)[1].rstrip(".")
    now = datetime.now(NEW_YORK)
    assert logged in {localtime.format_time(now - timedelta(minutes=m), NEW_YORK, "time") for m in (0, 1)}


def test_the_drill_report_prints_local_times(store, runner, monkeypatch: pytest.MonkeyPatch):
    """``drill report`` shows each milestone on the console's clock, with the abbreviation."""
    monkeypatch.setenv("CRISIS_TIMEZONE", "America/New_York")
    events = Events(store)
    event = events.declare(
        events.create(
            {"name": "Flood drill", "kind": "flood", "severity": "severe", "exercise": True}, actor="m"
        ).id,
        actor="m",
    )
    result = runner.invoke(cli, ["drill", "report", str(event.id)])
    assert result.exit_code == 0, result.output
    declared = localtime.format_time(event.declared_at, NEW_YORK, "seconds")
    assert re.search(rf"^Declared +{declared} +0 s$", result.output, re.MULTILINE), result.output


JS_HELPER = Path(__file__).resolve().parent.parent / "crisis_console" / "static" / "js" / "localtime.js"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_the_pages_helper_writes_times_as_the_server_does():
    """ccTime.format agrees with localtime.format_time across DST; datetime-local values go both ways."""
    moments = [
        "2015-03-08T06:59:00Z",
        "2015-03-08T07:00:00Z",
        "2015-03-29T00:59:00Z",
        "2015-03-29T01:00:00Z",
        "2015-10-25T00:30:00Z",
        "2015-10-25T01:30:00Z",
        "2015-11-01T05:30:00Z",
        "2015-11-01T06:30:00Z",
        "2015-02-09T19:05:07Z",
    ]
    with launched() as browser:
        page = browser.new_context(timezone_id=BROWSER_ZONE).new_page()
        for zone_name in ("America/New_York", "Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo"):
            zone = ZoneInfo(zone_name)
            page.set_content(
                f'<html data-timezone="{zone_name}"><head><script>{JS_HELPER.read_text()}</script></head></html>'
            )
            for style in ("minute", "seconds", "time"):
                shown = page.evaluate(
                    "([ms, style]) => ms.map((m) => ccTime.format(m, style))", [moments, style]
                )
                assert shown == [localtime.format_time(m, zone, style) for m in moments], zone_name
            typed = [localtime.input_value(m, zone) for m in moments]
            assert page.evaluate("(ms) => ms.map((m) => ccTime.toInput(m))", moments) == typed
            read_back = page.evaluate("(ts) => ts.map((t) => ccTime.fromInput(t))", typed)
            assert [localtime.input_value(m, zone) for m in read_back] == typed, zone_name
