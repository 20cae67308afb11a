"""Complaint intake, the category catalogue, trend queries and the replay of the Boston file."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from crisis_console import clock
from crisis_console.roles import Role
from crisis_console.services import trends
from crisis_console.services.categories import Categories
from crisis_console.services.intake import Intake
from crisis_console.store import Store

BOSTON = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "boston311_2015"
    / ("boston311_2015_window_2015-01-01_to_2015-03-31.csv")
)


@pytest.fixture
def catalogue(store):
    """Two categories with aliases."""
    categories = Categories(store)
    categories.create(
        {"code": "snow_plowing", "name": "Request for Snow Plowing", "aliases": ["plow", "unplowed street"]}
    )
    categories.create({"code": "no_heat", "name": "No heat", "aliases": ["Heat - Excessive  Insufficient"]})
    return categories


@pytest.fixture
def agent_headers(auth):
    """Bearer headers of an agent."""
    agent = auth.make_user(Role.AGENT)
    return {"Authorization": f"Bearer {auth.accounts.create_token(agent.username)}"}


def test_single_complaint_is_counted_under_its_category(client, catalogue, agent_headers, store):
    """A name or alias maps to the code, case-insensitively; the minute counter moves."""
    response = client.post(
        "/api/v1/complaints",
        json={"category": "UNPLOWED street", "zip": "02124", "occurred_at": "2015-01-27T12:10:30Z"},
        headers=agent_headers,
    )
    assert response.status_code == 201 and response.json == {
        "accepted": 1,
        "rejected": [],
        "category": "snow_plowing",
        "category_name": "Request for Snow Plowing",
    }
    result = trends.series(store, window="60m", bucket="1m", at="2015-01-27T12:30:00Z")
    assert result["totals"] == {"snow_plowing": 1, "all": 1}
    assert result["series"]["snow_plowing"][result["buckets"].index("2015-01-27T12:10:00.000Z")] == 1
    by_zip = trends.series(store, window="60m", bucket="1m", at="2015-01-27T12:30:00Z", zip_code="02124")
    assert by_zip["totals"]["snow_plowing"] == 1
    assert trends.series(store, window="60m", bucket="1m", at="2015-01-27T12:30:00Z", zip_code="02125")[
        "totals"
    ] == {"all": 0}


def test_a_category_made_by_another_process_is_usable_at_once(client, catalogue, agent_headers, store):
    """Intake keeps the name map for a moment; a name it does not know is looked up afresh."""
    assert (
        client.post("/api/v1/complaints", json={"category": "plow"}, headers=agent_headers).status_code == 201
    )
    other_process = Store(store.redis, store.keys.prefix)
    Categories(other_process).create(
        {"code": "power_outage", "name": "Power outage", "aliases": ["no power"]}
    )
    response = client.post("/api/v1/complaints", json={"category": "No Power"}, headers=agent_headers)
    assert response.status_code == 201, response.json
    response = client.post("/api/v1/complaints", json={"category": "no such thing"}, headers=agent_headers)
    assert response.json["error"]["field"] == "category"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({}, "category"),
        ({"category": "volcano"}, "category"),
        ({"category": "plow", "occurred_at": "yesterday"}, "occurred_at"),
        ({"category": "plow", "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"category": "plow", "zip": "2124"}, "zip"),
        ({"category": "plow", "lat": 91, "lon": 0}, "lat"),
        ({"category": "plow", "lat": 42.3, "lon": "west"}, "lon"),
        ({"category": "plow", "lat": 42.3}, "lon"),
        ({"category": "plow", "text": "x" * 4001}, "text"),
        ({"category": "plow", "channel": "pigeon"}, "channel"),
    ],
)
def test_single_bad_complaint_is_422_naming_the_field(client, catalogue, agent_headers, record, field):
    """Every field is checked; the error names it."""
    response = client.post("/api/v1/complaints", json=record, headers=agent_headers)
    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field


def test_batch_keeps_the_good_and_names_the_bad(client, catalogue, agent_headers, store):
    """A bad record in a batch never drops the good ones."""
    records = [
        {"category": "plow", "occurred_at": "2015-01-27T12:00:00Z"},
        {"category": "volcano"},
        "not an object",
        {"category": "no heat", "occurred_at": "2015-01-27T12:01:00Z", "zip": "02124"},
    ]
    response = client.post("/api/v1/complaints", json={"complaints": records}, headers=agent_headers)
    assert response.status_code == 201
    assert response.json["accepted"] == 2
    assert [(r["index"], r["error"]["field"]) for r in response.json["rejected"]] == [
        (1, "category"),
        (2, "complaint"),
    ]
    assert store.complaints.length() == 2
    too_many = client.post("/api/v1/complaints", json={"complaints": [{}] * 1001}, headers=agent_headers)
    assert too_many.status_code == 422 and too_many.json["error"]["field"] == "complaints"


def test_counters_are_exact_under_concurrent_writers(store, catalogue):
    """Eight threads × 250 complaints in the same minute: the counter says 2,000."""

    def write() -> None:
        intake = Intake(store)
        for _ in range(5):
            intake.submit(
                [{"category": "plow", "occurred_at": "2015-02-09T08:00:30Z"}] * 50,
                channel="phone",
                source="t",
            )

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = trends.series(store, window="1h", bucket="1h", at="2015-02-09T08:30:00Z")
    assert result["totals"]["snow_plowing"] == 2000
    minute = trends.series(store, window="5m", bucket="1m", at="2015-02-09T08:02:00Z")
    assert minute["totals"]["snow_plowing"] == 2000


def test_trend_query_errors_name_the_parameter(client, agent_headers):
    """window, bucket and at are checked."""
    for query, field in (
        ("window=forever", "window"),
        ("window=60m&bucket=7s", "bucket"),
        ("at=soon", "at"),
        ("window=200d&bucket=1d", "window"),
    ):
        response = client.get(f"/api/v1/trends?{query}", headers=agent_headers)
        assert response.status_code == 422, query
        assert response.json["error"]["field"] == field


def test_categories_api_and_name_clashes(client, auth, store):
    """Managers add categories; a name used by another category is a 409; everyone can list."""
    manager = auth.make_user(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    created = client.post(
        "/api/v1/categories", json={"name": "Downed wires", "aliases": ["wire down"]}, headers=headers
    )
    assert created.status_code == 201 and created.json["code"] == "downed_wires"
    clash = client.post(
        "/api/v1/categories", json={"name": "Wires", "aliases": ["Wire Down"]}, headers=headers
    )
    assert clash.status_code == 409
    patched = client.patch(
        "/api/v1/categories/downed_wires", json={"aliases": ["live wire"]}, headers=headers
    )
    assert patched.json["aliases"] == ["live wire"]
    assert (
        client.post("/api/v1/categories", json={"name": "x", "code": "Bad Code"}, headers=headers).json[
            "error"
        ]["field"]
        == "code"
    )
    agent = auth.make_user(Role.AGENT)
    agent_headers = {"Authorization": f"Bearer {auth.accounts.create_token(agent.username)}"}
    assert [
        c["code"] for c in client.get("/api/v1/categories", headers=agent_headers).json["categories"]
    ] == ["downed_wires"]
    assert client.post("/api/v1/categories", json={"name": "y"}, headers=agent_headers).status_code == 403


@pytest.mark.skipif(not BOSTON.exists(), reason="shared/data is not beside the checkout")
def test_replay_of_the_boston_file_lands_in_2015(runner, app, store):
    """The Boston 311 file replays at its own times: the blizzard shows in January 2015's counters."""
    from crisis_console.cli import cli

    result = runner.invoke(cli, ["replay", str(BOSTON)])
    assert result.exit_code == 0, result.output
    assert "Boston 311 format" in result.output and "accepted 26,788, rejected 0" in result.output
    day = trends.series(
        store, window="24h", bucket="1h", at="2015-01-28T04:59:00Z", category="misc_snow_complaint"
    )
    before = trends.series(
        store, window="24h", bucket="1h", at="2015-01-20T04:59:00Z", category="misc_snow_complaint"
    )
    assert day["totals"]["misc_snow_complaint"] > 20 > before["totals"].get("misc_snow_complaint", 0)


def test_replay_with_a_mapping_reports_rejected_rows(runner, app, store, tmp_path, catalogue):
    """Any CSV replays with --map; bad rows are counted and explained, good rows land."""
    from crisis_console.cli import cli

    path = tmp_path / "legacy.csv"
    path.write_text(
        "when,what,where\n2015-02-09T08:00:00Z,plow,02124\n2015-02-09T08:01:00Z,volcano,02124\nnot a time,plow,\n"
    )
    result = runner.invoke(
        cli,
        ["replay", str(path), "--map", "when=occurred_at", "--map", "what=category", "--map", "where=zip"],
    )
    assert result.exit_code == 0, result.output
    assert "accepted 1, rejected 2" in result.output
    assert "category: unknown_category" in result.output and "occurred_at: invalid" in result.output
    assert runner.invoke(cli, ["replay", str(path), "--map", "when=colour"]).exit_code == 1


@pytest.mark.skipif(not BOSTON.exists(), reason="shared/data is not beside the checkout")
@pytest.mark.parametrize("starter", [False, True], ids=["bare_catalogue", "starter_catalogue"])
def test_boston_blizzard_is_flagged_and_a_quiet_day_is_not(
    runner, app, store, client, agent_headers, starter
):
    """With the Boston file at its own times, the 27 January blizzard's snow categories are
    flagged by /trends/spikes?at=…, and steady categories stay quiet on an ordinary morning.
    The same on a console that started with the starter catalogue, where the Boston request
    types that mean a starter category (with the same hazards) are counted under it."""
    from crisis_console.cli import cli
    from crisis_console.services import catalogue

    if starter:
        catalogue.seed(store)
    assert runner.invoke(cli, ["replay", str(BOSTON)]).exit_code == 0
    if starter:
        lights = trends.series(store, window="7d", bucket="7d", at="2015-01-31T00:00:00Z")["totals"]
        assert lights["street_light_out"] > 100 and "street_light_outages" not in lights
    storm = client.get("/api/v1/trends/spikes?window=60m&at=2015-01-27T12:59:00Z", headers=agent_headers).json
    flagged = {s["category"] for s in storm["spikes"]}
    assert "request_for_snow_plowing_emergency_responder" in flagged
    spike = next(
        s for s in storm["spikes"] if s["category"] == "request_for_snow_plowing_emergency_responder"
    )
    assert spike["observed"] >= 5 and spike["expected"] < spike["observed"] / 3
    quiet = client.get("/api/v1/trends/spikes?window=60m&at=2015-01-20T15:00:00Z", headers=agent_headers).json
    assert quiet["spikes"] == []
    # The February snow emergencies, within an hour of their onset (the first snow complaint
    # of an hour holding five; bench/detector.py reads them off the file). Each category alone
    # is mostly still too small to be news; together, as the winter storm, against the same
    # weekday hours of the three weeks before, they are.
    winter = {c.code for c in Categories(store).list() if "winter_storm" in c.hazards}
    for onset, at in (
        ("2015-02-02T12:17:00Z", "2015-02-02T12:45:00Z"),  # 07:17 → 07:45 in Boston
        ("2015-02-08T22:27:00Z", "2015-02-08T23:25:00Z"),  # Sunday 17:27 → 18:25
        ("2015-02-15T20:30:00Z", "2015-02-15T21:25:00Z"),  # after the 14 Feb 22:00 emergency: 15:30 → 16:25
    ):
        spikes = client.get(f"/api/v1/trends/spikes?window=60m&at={at}", headers=agent_headers).json["spikes"]
        [storm] = [s for s in spikes if s.get("hazard") == "winter_storm" or s["category"] in winter]
        assert storm["observed"] >= 5 and storm["expected"] < 1, (at, storm)
        began = clock.parse_iso(storm["since"]) - clock.parse_iso(onset)
        assert timedelta(minutes=-5) < began <= timedelta(minutes=30), (onset, storm)  # (5-minute buckets)
    early = client.get("/api/v1/trends/spikes?window=60m&at=2015-02-02T12:45:00Z", headers=agent_headers).json
    assert early["spikes"][0]["hazard"] == "winter_storm" and len(early["spikes"][0]["categories"]) == 2
    # Later in those storms single categories surge on their own (the 3 February jump, the 10
    # February peak, the fire department's requests on 15 February).
    for at, category in (
        ("2015-02-02T13:20:00Z", "misc_snow_complaint"),
        ("2015-02-03T12:50:00Z", "misc_snow_complaint"),
        ("2015-02-10T16:25:00Z", "misc_snow_complaint"),
        ("2015-02-15T22:20:00Z", "fire_department_request"),
    ):
        spikes = client.get(f"/api/v1/trends/spikes?window=60m&at={at}", headers=agent_headers).json["spikes"]
        assert category in {s["category"] for s in spikes if not s.get("hazard")}, (at, spikes)
    assert (
        client.get("/api/v1/trends/spikes?window=2d", headers=agent_headers).json["error"]["field"]
        == "window"
    )


def test_csv_exports_of_counts_and_records(client, catalogue, agent_headers, auth):
    """Counts export for anyone who sees the dashboard; records export for staff, not agents."""
    import csv
    import io

    client.post(
        "/api/v1/complaints",
        json={"complaints": [{"category": "plow", "zip": "02124", "text": "Dead end, not plowed"}] * 3},
        headers=agent_headers,
    )
    manager = auth.make_user(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    counts = client.get("/api/v1/trends.csv?window=1h&bucket=1h", headers=headers)
    assert counts.mimetype == "text/csv" and "attachment" in counts.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(counts.get_data(as_text=True))))
    assert rows[0] == ["bucket_start", "local_time", "time_zone", "category", "count"]
    assert rows[1][3:] == ["snow_plowing", "3"]
    records = list(
        csv.DictReader(
            io.StringIO(client.get("/api/v1/complaints.csv", headers=headers).get_data(as_text=True))
        )
    )
    assert [(r["category"], r["zip"], r["text"]) for r in records] == [
        ("snow_plowing", "02124", "Dead end, not plowed")
    ] * 3
    assert client.get("/api/v1/complaints.csv", headers=agent_headers).status_code == 403


def test_last_hour_means_the_last_sixty_minutes(store, catalogue):
    """window=60m&bucket=60m counts the 60 minutes before `at`, across a clock-hour boundary."""
    Intake(store).submit(
        [
            {"category": "plow", "occurred_at": "2015-02-09T07:40:00Z"},
            {"category": "plow", "occurred_at": "2015-02-09T08:05:00Z"},
        ],
        channel="phone",
        source="t",
    )
    result = trends.series(store, window="60m", bucket="60m", at="2015-02-09T08:10:00Z")
    assert result["totals"]["snow_plowing"] == 2 and len(result["buckets"]) == 1


def test_movers_rank_categories_above_their_usual_level(store, catalogue, client, agent_headers):
    """A category well above its history leads the movers; one at its usual level is not listed."""
    history = [
        {"category": "no heat", "occurred_at": f"2015-02-0{d}T{h:02d}:10:00Z"}
        for d in range(2, 9)
        for h in range(8, 20)
    ]
    surge = [{"category": "plow", "occurred_at": "2015-02-09T08:40:00Z"}] * 12 + [
        {"category": "no heat", "occurred_at": "2015-02-09T08:45:00Z"}
    ]
    Intake(store).submit(history, channel="phone", source="t")
    Intake(store).submit(surge, channel="phone", source="t")
    movers = client.get(
        "/api/v1/trends/movers?window=60m&at=2015-02-09T08:59:00Z", headers=agent_headers
    ).json["movers"]
    assert [m["category"] for m in movers] == ["snow_plowing"]
    assert movers[0]["observed"] == 12 and movers[0]["expected"] < 1
    assert movers[0]["ratio"] is None, "against a usual of almost nothing it is new, not 'times usual'"
