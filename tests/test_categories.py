"""The category catalogue: the starter categories of a fresh console, forgiving matching,
retiring and merging, the Categories page and ``categories import`` of Open311 lists."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from crisis_console import clock
from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.roles import Role
from crisis_console.services import catalogue, trends
from crisis_console.services.categories import Categories, Matcher
from crisis_console.services.events import Events
from scripts_library.templates import HAZARDS, load_templates
from tests.conftest import TWILIO_TOKEN
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
OPEN311 = ROOT.parent / "shared" / "data" / "open311"
SERVICES_XML = OPEN311 / "cfa-open311__spec__fixtures__services.xml"
NUMBER, TEXTER = "+16175550311", "+16175550177"


@pytest.fixture
def app(redis_url: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A console as a fresh install starts: empty prefix, starter catalogue seeded."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    return create_app(
        TestConfig(
            REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix, TWILIO_AUTH_TOKEN=TWILIO_TOKEN, SEED_CATALOGUE=True
        )
    )


@pytest.fixture
def agent_headers(auth):
    """Bearer headers of an agent."""
    agent = auth.make_user(Role.AGENT)
    return {"Authorization": f"Bearer {auth.accounts.create_token(agent.username)}"}


@pytest.fixture
def manager_headers(auth):
    """Bearer headers of a manager."""
    manager = auth.make_user(Role.MANAGER)
    return {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}


def log(client, headers, category: str, **extra) -> dict:
    """Post one complaint; return the response's JSON (with its status under ``_status``)."""
    response = client.post("/api/v1/complaints", json={"category": category, **extra}, headers=headers)
    return {**response.json, "_status": response.status_code}


# --- the starter catalogue ----------------------------------------------------------------


def test_agent_logs_no_heat_on_a_fresh_install(client, auth, store):
    """A fresh console: an agent signed in on the agent page logs "No heat" and it counts."""
    auth.login_as(Role.AGENT)
    response = client.post(
        "/api/v1/complaints", json={"category": "No heat", "zip": "02124"}, headers=auth.csrf_headers()
    )
    assert response.status_code == 201, response.json
    assert store.complaints.recent(1)[0]["category"] == "no_heat"
    assert trends.series(store, window="10m")["totals"]["no_heat"] == 1


def shortcut_names(html: str) -> list[str]:
    """Return the category names of the agent page's Alt+digit buttons, in order."""
    return re.findall(r'class="button button--small shortcut" data-name="([^"]+)"', html)


def test_a_fresh_install_offers_one_key_shortcuts_led_by_the_events_hazard(client, auth, store):
    """Before anything is logged the agent page already offers Alt+1…6; a declared winter storm
    puts its categories first (No heat among them); what is logged most in the hour leads."""
    auth.login_as(Role.AGENT)
    first_morning = shortcut_names(client.get("/agent").get_data(as_text=True))
    assert len(first_morning) == 6

    events = Events(store)
    storm = events.create({"name": "Blizzard", "kind": "winter_storm", "severity": "severe"}, actor="test")
    events.declare(storm.id, actor="test")
    during_storm = shortcut_names(client.get("/agent").get_data(as_text=True))
    winter = {c.name for c in Categories(store).list() if "winter_storm" in c.hazards}
    assert "No heat" in during_storm
    assert set(during_storm) <= winter

    for _ in range(2):
        assert log(client, auth.csrf_headers(), "pothole")["_status"] == 201
    assert shortcut_names(client.get("/agent").get_data(as_text=True))[0] == "Pothole"


def test_the_starter_file_is_sound():
    """About 40 categories, each named in both languages with an Open311 code; no name is
    claimed twice; hazards are the library's; every code a hazard template lists exists."""
    entries = catalogue.load_starter()
    assert 40 <= len(entries) <= 60
    seen: dict[str, str] = {}
    for entry in entries:
        assert entry["name_es"] and entry["open311_code"] and entry["aliases"], entry["code"]
        assert set(entry["hazards"]) <= set(HAZARDS), entry["code"]
        for name in {
            entry["code"],
            entry["name"],
            entry["name_es"],
            *entry["aliases"],
            entry["open311_code"],
        }:
            key = " ".join(name.split()).lower()
            assert seen.setdefault(key, entry["code"]) == entry["code"], (name, seen[key], entry["code"])
    codes = {e["code"] for e in entries}
    for template in load_templates():
        assert set(template.categories) <= codes, (template.key, set(template.categories) - codes)


def test_seeded_once_with_one_audit_entry_and_a_retired_category_stays_retired(
    client, store, redis_url, prefix, tmp_path, manager_headers
):
    """The first start seeds (one audit line, not 44); a later start changes nothing."""
    listed = client.get("/api/v1/categories", headers=manager_headers).json["categories"]
    assert len(listed) == len(catalogue.load_starter())
    seeded = [e for e in store.audit.read() if e["action"].startswith("categor")]
    assert [e["action"] for e in seeded] == ["categories.seeded"]
    assert seeded[0]["details"]["count"] == len(listed)
    assert client.post("/api/v1/categories/graffiti/retire", headers=manager_headers).status_code == 200
    create_app(TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix, SEED_CATALOGUE=True))
    assert Categories(store).require("graffiti").status == "retired"
    assert [e["action"] for e in store.audit.read() if e["action"] == "categories.seeded"] == [
        "categories.seeded"
    ]
    assert catalogue.seed(store) == []


def test_seeding_after_a_replay_keeps_the_names_the_replay_created(store, prefix):
    """A catalogue that already has categories (a replay ran first) keeps them as they are."""
    from crisis_console.store import Store

    replayed = Store(store.redis, f"{prefix}-replayed")
    try:
        Categories(replayed).create({"code": "streetlights", "name": "Street Light Outages"})
        added = catalogue.seed(replayed)
        assert "street_light_out" in added and "streetlights" not in added
        resolver = Categories(replayed).resolver()
        assert resolver["street light outages"] == "streetlights"
        assert resolver["street light out"] == "street_light_out"
    finally:
        replayed.delete_all()


# --- forgiving matching -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("No heat", "no_heat"),
        ("no heat", "no_heat"),
        ("No-heat", "no_heat"),
        ("noheat", "no_heat"),
        ("NO HEAT!!", "no_heat"),
        ("no heet", "no_heat"),
        ("sin calefacción", "no_heat"),
        ("Street light out", "street_light_out"),
        ("stret light out", "street_light_out"),
        ("Street Light Outages", "street_light_out"),  # the Boston request type
        ("downed tree", "tree_down"),
        ("wire down", "downed_wires"),
        ("flooding", "street_flooding"),
        ("sewer back-up", "sewer_backup"),
        ("missed trash pickup", "trash_missed"),
        ("unplowed street", "snow_plowing"),
        ("icy sidewalk", "icy_sidewalk"),
        ("pot hole", "pothole"),
        ("abandoned car", "abandoned_vehicle"),
        ("power outage", "power_outage"),
        ("water main break", "water_main_break"),
        ("boil water", "boil_water_question"),
        ("shelter?", "shelter_question"),
        ("warming center", "warming_centre_question"),
        ("cooling centre", "cooling_centre_question"),
        ("traffic light out", "traffic_signal"),
        ("STREETLIGHT", "street_light_out"),  # its Open311 code
    ],
)
def test_forgiving_names_map_to_the_starter_categories(client, agent_headers, store, typed, code):
    """Case, punctuation, run-together words, Spanish names and small typos all land."""
    answer = log(client, agent_headers, typed)
    assert answer["_status"] == 201, answer
    assert store.complaints.recent(1)[0]["category"] == code
    assert (answer["category"], answer["category_name"]) == (code, Categories(store).require(code).name)


def test_a_close_call_between_two_categories_is_refused_with_suggestions(client, agent_headers, store):
    """'ligts out' is as near "lights out" (power outage) as "light out" (street light): ask."""
    answer = log(client, agent_headers, "ligts out")
    assert answer["_status"] == 422
    error = answer["error"]
    assert (error["code"], error["field"]) == ("ambiguous_category", "category")
    assert "Power outage" in error["message"] and "Street light out" in error["message"]
    assert store.complaints.length() == 0


def test_an_unknown_name_is_refused_naming_what_it_may_mean(client, agent_headers):
    """Nothing is guessed from a word that is only near; the message suggests."""
    answer = log(client, agent_headers, "sewer")
    assert answer["_status"] == 422
    assert answer["error"]["code"] == "unknown_category" and "Sewer backup" in answer["error"]["message"]
    assert log(client, agent_headers, "volcano")["error"]["message"] == "Unknown category 'volcano'."
    assert log(client, agent_headers, "no")["error"]["code"] == "unknown_category"


def test_matcher_refuses_two_categories_named_alike():
    """Two categories whose names normalise the same never match either."""
    from crisis_console.services.categories import Category

    matcher = Matcher([Category("tree_a", "Tree down"), Category("tree_b", "Tree-down")])
    found = matcher.match("tree down")
    assert found.code is None and found.ambiguous and set(found.suggestions) == {"tree_a", "tree_b"}


def test_open311_requests_use_the_catalogue(client, auth, store):
    """A GeoReport client posts the starter Open311 code; services.json lists the starter list."""
    key = auth.accounts.create_token(auth.make_user(Role.AGENT).username, "city app", scope="open311")
    services = client.get("/open311/v2/services.json").json
    assert {"STREETLIGHT", "NO-HEAT"} <= {s["service_code"] for s in services}
    response = client.post(
        "/open311/v2/requests.json",
        data={"api_key": key, "service_code": "NO-HEAT", "lat": "42.35", "long": "-71.06"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert store.complaints.recent(1)[0]["category"] == "no_heat"


# --- SMS ----------------------------------------------------------------------------------


def sms(twilio, body: str) -> str:
    """Text the console as Twilio would; return the reply."""
    response = twilio.post("/twilio/sms", {"From": TEXTER, "To": NUMBER, "Body": body, "MessageSid": "SM2"})
    assert response.status_code == 200 and response.mimetype == "text/xml"
    return ET.fromstring(response.get_data())[0].text


@pytest.mark.parametrize(
    ("body", "code", "zip_code", "text"),
    [
        ("No heat 02115", "no_heat", "02115", "No heat 02115"),
        ("no-heat", "no_heat", "", "no-heat"),
        ("02124 stret light out", "street_light_out", "02124", "02124 stret light out"),
        ("Downed tree 02124 on my car", "tree_down", "02124", "02124 on my car"),
        ("sin calefaccion 02125", "no_heat", "02125", "sin calefaccion 02125"),
    ],
)
def test_sms_uses_the_same_forgiving_matching(twilio, store, body, code, zip_code, text):
    """'No heat 02115' is a no-heat report in 02115, confirmed with its reference."""
    answer = sms(twilio, body)
    confirmed = (
        ("Thank you. Your report (", "is logged as #"),
        ("Gracias. Registramos su reporte (", "referencia #"),
    )
    assert any(answer.startswith(head) and ref in answer for head, ref in confirmed), answer
    latest = store.complaints.recent(1)[0]
    assert (latest["category"], latest["zip"], latest["channel"], latest["text"]) == (
        code,
        zip_code,
        "sms",
        text,
    )


def test_sms_without_a_category_still_gets_the_menu(twilio, store):
    """Words that name no category get the numbered menu, not a guess."""
    assert sms(twilio, "my radiators are cold 02125").startswith("Which is it? Reply with a number: 1 ")
    assert store.complaints.length() == 0


# --- retire, restore, merge -----------------------------------------------------------------


def test_retire_stops_matching_and_offering_keeps_history_and_restores(
    client, manager_headers, agent_headers, store
):
    """A retired category is not offered or matched for new contacts; its counts stay; restored, it is back."""
    assert log(client, agent_headers, "graffiti")["_status"] == 201
    retired = client.post("/api/v1/categories/graffiti/retire", headers=manager_headers)
    assert retired.status_code == 200 and retired.json["status"] == "retired"
    codes = {c["code"] for c in client.get("/api/v1/categories", headers=agent_headers).json["categories"]}
    assert "graffiti" not in codes
    every = client.get("/api/v1/categories?status=all", headers=agent_headers).json["categories"]
    assert {c["code"]: c["status"] for c in every}["graffiti"] == "retired"
    refused = log(client, agent_headers, "Graffiti")
    assert refused["_status"] == 422 and refused["error"]["code"] == "retired_category"
    assert log(client, agent_headers, "grafiti")["error"]["field"] == "category"  # no fuzzy way round
    assert trends.series(store, window="10m")["totals"]["graffiti"] == 1
    assert client.post("/api/v1/categories/graffiti/retire", headers=manager_headers).status_code == 409
    restored = client.post("/api/v1/categories/graffiti/restore", headers=manager_headers)
    assert restored.status_code == 200 and restored.json["status"] == "active"
    assert log(client, agent_headers, "Graffiti")["_status"] == 201
    actions = [e["action"] for e in store.audit.read() if e["subject"] == "category:graffiti"]
    assert actions == ["category.retired", "category.restored"]


def test_merge_keeps_the_counts_history_included(client, manager_headers, agent_headers, store):
    """Counts of the merged-away category, in every minute and hour, count under the kept one
    afterwards (via /api/v1/trends); its names become aliases of the kept one."""
    created = client.post(
        "/api/v1/categories",
        json={"name": "Snow plow request", "aliases": ["plow me out"], "hazards": ["winter_storm"]},
        headers=manager_headers,
    )
    assert created.status_code == 201, created.json
    now = clock.now()
    earlier = clock.iso(now - timedelta(days=2))
    for category, when, zip_code in (
        ("snow plow request", None, "02124"),
        ("snow plow request", None, "02124"),
        ("plow me out", earlier, "02125"),
        ("unplowed street", None, "02124"),
    ):
        extra = {"occurred_at": when} if when else {}
        assert log(client, agent_headers, category, zip=zip_code, **extra)["_status"] == 201

    def totals(window: str, **query: str) -> dict:
        params = "&".join(f"{k}={v}" for k, v in {"window": window, "bucket": window, **query}.items())
        return client.get(f"/api/v1/trends?{params}", headers=agent_headers).json["totals"]

    assert totals("60m") == {"snow_plow_request": 2, "snow_plowing": 1, "all": 3}
    merged = client.post(
        "/api/v1/categories/snow_plow_request/merge", json={"into": "snow_plowing"}, headers=manager_headers
    )
    assert merged.status_code == 200, merged.json
    assert {"Snow plow request", "plow me out"} <= set(merged.json["aliases"])
    assert totals("60m") == {"snow_plowing": 3, "all": 3}
    assert totals("7d") == {"snow_plowing": 4, "all": 4}  # the hour counters of two days ago too
    assert totals("60m", zip="02124") == {"snow_plowing": 3, "all": 3}
    for typed in ("plow me out", "Snow plow request", "snow_plow_request", "snow plow requst"):
        assert log(client, agent_headers, typed)["category"] == "snow_plowing", typed
    every = client.get("/api/v1/categories?status=all", headers=agent_headers).json["categories"]
    assert {c["code"]: (c["status"], c["merged_into"]) for c in every}["snow_plow_request"] == (
        "merged",
        "snow_plowing",
    )
    entry = [e for e in store.audit.read() if e["action"] == "category.merged"]
    assert (
        entry[0]["subject"] == "category:snow_plow_request" and entry[0]["details"]["into"] == "snow_plowing"
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", "/api/v1/categories", {"aliases": ["x"]}, 422, "name"),
        ("post", "/api/v1/categories", {"name": "X", "code": "Bad Code"}, 422, "code"),
        ("post", "/api/v1/categories", {"name": "No heat"}, 409, "code"),
        ("post", "/api/v1/categories", {"name": "Heat wave", "aliases": ["no heat"]}, 409, "code"),
        ("post", "/api/v1/categories", {"name": "Yard waste", "aliases": 5}, 422, "aliases"),
        ("patch", "/api/v1/categories/no_heat", {"hazards": {"a": 1}}, 422, "hazards"),
        ("patch", "/api/v1/categories/no_heat", {"name": ""}, 422, "name"),
        ("patch", "/api/v1/categories/no_heat", {"aliases": ["no water"]}, 409, "aliases"),
        ("patch", "/api/v1/categories/nope", {"name": "Z"}, 404, "code"),
        ("post", "/api/v1/categories/nope/retire", None, 404, "code"),
        ("post", "/api/v1/categories/no_heat/restore", None, 409, "code"),
        ("post", "/api/v1/categories/no_heat/merge", {}, 422, "into"),
        ("post", "/api/v1/categories/no_heat/merge", {"into": 7}, 422, "into"),
        ("post", "/api/v1/categories/no_heat/merge", {"into": "nope"}, 404, "into"),
        ("post", "/api/v1/categories/no_heat/merge", {"into": "no_heat"}, 422, "into"),
        ("post", "/api/v1/categories/no_heat/merge", [1], 400, None),
    ],
)
def test_bad_input_gets_a_json_error_naming_the_field(
    client, manager_headers, method, path, body, status, field
):
    """Mistakes a person could type are 4xx JSON naming the field, never a 500."""
    response = getattr(client, method)(path, json=body, headers=manager_headers)
    assert response.status_code == status, response.json
    assert response.json["error"]["field"] == field or field is None


def test_merging_into_a_retired_or_from_a_merged_category_is_a_conflict(client, manager_headers):
    """Only active categories are merged into; a merged category is not merged twice."""
    client.post("/api/v1/categories/graffiti/retire", headers=manager_headers)
    into_retired = client.post(
        "/api/v1/categories/rodents/merge", json={"into": "graffiti"}, headers=manager_headers
    )
    assert into_retired.status_code == 409 and into_retired.json["error"]["field"] == "into"
    client.post("/api/v1/categories/rodents/merge", json={"into": "dead_animal"}, headers=manager_headers)
    again = client.post("/api/v1/categories/rodents/merge", json={"into": "pothole"}, headers=manager_headers)
    assert again.status_code == 409
    assert (
        client.patch("/api/v1/categories/rodents", json={"name": "R"}, headers=manager_headers).status_code
        == 409
    )


def test_roles_on_the_catalogue(client, auth, agent_headers):
    """Anyone signed in reads it; managers and admins change it and see the page; nobody else."""
    assert client.get("/api/v1/categories").status_code == 401
    assert client.get("/api/v1/categories", headers=agent_headers).status_code == 200
    for path, body in (
        ("/api/v1/categories", {"name": "Agent made"}),
        ("/api/v1/categories/no_heat/retire", None),
        ("/api/v1/categories/no_heat/restore", None),
        ("/api/v1/categories/no_heat/merge", {"into": "no_water"}),
    ):
        assert client.post(path, json=body, headers=agent_headers).status_code == 403, path
    assert (
        client.patch("/api/v1/categories/no_heat", json={"name": "x"}, headers=agent_headers).status_code
        == 403
    )
    for role, status in ((Role.AGENT, 403), (Role.STAKEHOLDER, 403), (Role.MANAGER, 200), (Role.ADMIN, 200)):
        auth.login_as(role)
        page = client.get("/admin/categories")
        assert page.status_code == status, role
        if status == 200:
            html = page.get_data(as_text=True)
            assert 'href="/admin/categories"' in html and "Street light out" in html
        auth.logout()


def test_the_page_merges_with_its_csrf_token_only(client, auth, store):
    """The page's merge form is a plain form: without its CSRF token it is refused."""
    auth.login_as(Role.ADMIN)
    form = {"source": "rodents", "into": "dead_animal"}
    assert client.post("/admin/categories/merge", data=form).status_code == 400
    assert Categories(store).require("rodents").status == "active"
    done = client.post("/admin/categories/merge", data={**form, "csrf_token": auth.csrf()})
    assert done.status_code == 302
    assert Categories(store).require("rodents").status == "merged"
    page = client.get("/admin/categories").get_data(as_text=True)
    assert "Merged" in page and "Rats or rodents → Dead animal pickup" in page
    bad = client.post("/admin/categories/merge", data={"source": "", "csrf_token": auth.csrf()})
    assert bad.status_code == 302
    assert "Choose the category to merge away." in client.get("/admin/categories").get_data(as_text=True)
    assert client.post("/api/v1/categories/pothole/retire").status_code == 400  # cookie, no CSRF


def test_openapi_lists_the_catalogue_routes(client):
    """The new routes are in the published contract."""
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/categories/{code}/retire", "/categories/{code}/restore", "/categories/{code}/merge"):
        assert "post" in paths[path], path
    assert "patch" in paths["/categories/{code}"]


# --- categories import ----------------------------------------------------------------------


def services_json(tmp_path: Path) -> Path:
    """The Open311 spec's services sample as a services.json (the same 36 services)."""
    root = ET.parse(SERVICES_XML).getroot()
    rows = [{child.tag: (child.text or "").strip() for child in service} for service in root.iter("service")]
    path = tmp_path / "services.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.skipif(not SERVICES_XML.exists(), reason="shared/data is not beside the checkout")
def test_import_of_the_open311_samples(runner, store, tmp_path):
    """Every service becomes a category with its service_code; a known name gets the code;
    a second import changes nothing. XML and JSON give the same."""
    from crisis_console.cli import cli

    catalogue.seed(store)
    before = len(Categories(store).list())
    result = runner.invoke(cli, ["categories", "import", str(services_json(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "36 services in services.json: created 35, updated 1, unchanged 0, rejected 0" in result.output
    water = Categories(store).require("water_main_break")
    assert water.open311_code == "028" and water.name == "Water Main Break"
    assert "Water_Main_Break" in water.aliases and "watermain break" in water.aliases
    cans = next(c for c in Categories(store).list() if c.open311_code == "001")
    assert (cans.code, cans.name, cans.aliases) == (
        "cans_left_out_24x7",
        "Cans Left Out 24x7",
        ["Cans_Left_Out_24x7"],
    )
    assert len(Categories(store).list()) == before + 35
    again = runner.invoke(cli, ["categories", "import", str(SERVICES_XML)])
    assert again.exit_code == 0, again.output
    assert "created 0, updated 0, unchanged 36, rejected 0" in again.output
    assert Categories(store).resolver()["028"] == "water_main_break"


def test_import_errors_name_the_file_and_entry(runner, store, tmp_path):
    """A bad entry is named by file and number and the rest are imported (exit 1); a file
    that is not a services list is refused naming it."""
    from crisis_console.cli import cli

    path = tmp_path / "city.json"
    path.write_text(
        json.dumps(
            [
                {"service_code": "A1", "service_name": "Leaf pickup"},
                {"service_code": "A2"},
                "nonsense",
                {"service_code": "A4", "service_name": "Bike lane blocked", "keywords": "bike, lane"},
            ]
        )
    )
    result = runner.invoke(cli, ["categories", "import", str(path)])
    assert result.exit_code == 1
    assert "created 2, updated 0, unchanged 0, rejected 2" in result.output
    assert "city.json: entry 2 (service_code 'A2'): service_name is missing" in result.output
    assert "city.json: entry 3: expected an object" in result.output
    assert set(Categories(store).require("bike_lane_blocked").aliases) == {"bike", "lane"}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    failed = runner.invoke(cli, ["categories", "import", str(broken)])
    assert failed.exit_code == 1 and "broken.json: not valid JSON" in failed.output
    wrong = tmp_path / "object.json"
    wrong.write_text('{"service_code": "A"}')
    assert "expected a JSON list" in runner.invoke(cli, ["categories", "import", str(wrong)]).output


def test_import_with_redis_unreachable_exits_2(tmp_path):
    """Like every command: one line naming the URL, exit status 2."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    path = tmp_path / "services.json"
    path.write_text('[{"service_code": "A", "service_name": "B"}]')
    env = {**os.environ, "REDIS_URL": url, "CRISIS_INSTANCE_PATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "crisis_console", "categories", "import", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert url in done.stderr and "cannot reach Redis" in done.stderr


def test_a_retired_categorys_history_keeps_its_name_on_the_dashboard(
    client, auth, agent_headers, manager_headers
):
    """Counts from before a category was retired still read as its name, not its code."""
    assert log(client, agent_headers, "Dead animal")["_status"] == 201
    client.post("/api/v1/categories/dead_animal/retire", headers=manager_headers)
    auth.login_as(Role.STAKEHOLDER)
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Dead animal pickup" in page
