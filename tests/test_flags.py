"""Agent flags: "I keep hearing about…" raised by agents, grouped, promoted or dismissed by managers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
import socketio

from crisis_console import clock
from crisis_console.roles import Role
from crisis_console.services.flags import best_group, similarity
from crisis_console.sockets import names

#: Wordings of one topic, as agents type them.
SAME_TOPIC = [
    ("shelter on Main St full", "main st shelter is full"),
    ("Shelter on Main Street is FULL!", "shelter main st full"),
    ("shelter on main st full", "shleter on main st ful"),
    ("gas smell on Elm St", "smell of gas, elm street"),
    ("Trash not picked up in Dorchester", "dorchester trash not picked up"),
    ("warming center closed", "Warming centre closed"),
    ("Downed wire on Blue Hill Ave", "wires down blue hill avenue"),
]
#: Different topics, some sharing words.
DIFFERENT_TOPICS = [
    ("shelter on Main St full", "downed tree on Main St"),
    ("shelter on Main St full", "shelter on Elm St full"),
    ("shelter on Main St full", "main st flooded"),
    ("no heat in apartment", "no power in apartment"),
    ("gas smell on Elm St", "trash not picked up on Elm St"),
    ("bus route 22 not running", "bus route 28 not running"),
    ("street light out", "no heat"),
]


class Desk:
    """Agents, managers and stakeholders calling the API with their own tokens."""

    def __init__(self, auth, client):
        self.auth = auth
        self.client = client
        self.headers: dict[str, dict[str, str]] = {}
        self.users: dict[str, object] = {}

    def person(self, name: str, role: str) -> None:
        """Add someone to the desk."""
        user = self.auth.make_user(role)
        self.users[name] = user
        self.headers[name] = {"Authorization": f"Bearer {self.auth.accounts.create_token(user.username)}"}

    def post(self, who: str, path: str, body: dict | None = None):
        """POST JSON as ``who``."""
        return self.client.post(f"/api/v1{path}", json=body, headers=self.headers[who])

    def get(self, who: str, path: str):
        """GET as ``who``."""
        return self.client.get(f"/api/v1{path}", headers=self.headers[who])


@pytest.fixture
def desk(auth, client) -> Desk:
    """Three agents, two managers and a stakeholder."""
    people = Desk(auth, client)
    for name in ("ana", "ben", "cy"):
        people.person(name, Role.AGENT)
    people.person("mia", Role.MANAGER)
    people.person("max", Role.MANAGER)
    people.person("sam", Role.STAKEHOLDER)
    return people


def open_groups(desk: Desk, who: str = "mia", window: str = "60m") -> list[dict]:
    """Return the open groups a reader sees."""
    response = desk.get(who, f"/flags?window={window}")
    assert response.status_code == 200, response.json
    return response.json["groups"]


# --- grouping: deterministic, not chance ----------------------------------------------------


@pytest.mark.parametrize(("first", "second"), SAME_TOPIC)
def test_wordings_of_one_topic_are_similar(first, second):
    """Case, punctuation, word order, filler words, abbreviations and small typos do not matter."""
    assert similarity(first, second) >= 80, (first, second)


@pytest.mark.parametrize(("first", "second"), DIFFERENT_TOPICS)
def test_different_topics_are_not(first, second):
    """A different place, service or number keeps flags apart, even with words in common."""
    assert similarity(first, second) < 80, (first, second)


def test_a_flag_joins_the_most_alike_group_and_ties_go_to_the_latest():
    """Matching picks the closest group; among equals, the one heard last (listed first)."""
    groups = [
        {"id": "7", "texts": '["main st shelter is full"]'},
        {"id": "3", "texts": '["Shelter on Main Street is full"]'},
        {"id": "5", "texts": '["downed tree on Main St"]'},
    ]
    assert best_group("shelter on Main St full", groups) == "7"
    assert best_group("downed tree main street", groups) == "5"
    assert best_group("boil water notice", groups) is None
    assert best_group("anything", []) is None


# --- raising --------------------------------------------------------------------------------


def test_agent_raises_a_flag_and_it_is_audited(desk, store):
    """An agent's flag is stored in a new group with one agent, and audited."""
    response = desk.post("ana", "/flags", {"text": "  shelter on Main St   full ", "zip": "02124"})
    assert response.status_code == 201, response.json
    flag = response.json
    assert flag["text"] == "shelter on Main St full"
    assert flag["zip"] == "02124" and flag["category"] is None and flag["duplicate"] is False
    assert flag["group"]["count"] == 1 and flag["group"]["agents"] == 1
    assert flag["group"]["first_at"] == flag["group"]["last_at"] == flag["at"]
    entries = [e for e in store.audit.read() if e["action"] == "flag.raised"]
    assert len(entries) == 1
    assert entries[0]["actor"] == desk.users["ana"].username
    assert entries[0]["subject"] == f"flag_group:{flag['group_id']}"
    assert entries[0]["details"]["text"] == "shelter on Main St full"


def test_similar_flags_from_several_agents_make_one_group(desk):
    """Three agents' wordings of one topic are one group counted three times; others stay apart."""
    desk.post("ana", "/flags", {"text": "shelter on Main St full", "zip": "02124"})
    desk.post("ben", "/flags", {"text": "main st shelter is full"})
    desk.post("cy", "/flags", {"text": "Shelter on Main Street is FULL!", "zip": "02125"})
    desk.post("ben", "/flags", {"text": "downed tree on Main St"})
    desk.post("cy", "/flags", {"text": "bus route 22 not running"})
    desk.post("ana", "/flags", {"text": "bus route 28 not running"})
    groups = open_groups(desk)
    by_text = {g["text"]: g for g in groups}
    assert len(groups) == 4
    shelter = by_text["shelter on Main St full"]
    assert shelter["count"] == shelter["agents"] == 3 and shelter["flags"] == 3
    assert shelter["texts"] == [
        "shelter on Main St full",
        "main st shelter is full",
        "Shelter on Main Street is FULL!",
    ]
    assert sorted(shelter["zips"]) == ["02124", "02125"]
    assert groups[0]["id"] == shelter["id"]  # most agents first
    assert by_text["downed tree on Main St"]["count"] == 1
    assert by_text["bus route 22 not running"]["id"] != by_text["bus route 28 not running"]["id"]


def test_stakeholders_read_the_same_groups_with_stable_ids(desk):
    """Managers and stakeholders see one group under one id, whatever the window."""
    desk.post("ana", "/flags", {"text": "boil water notice confusion"})
    desk.post("ben", "/flags", {"text": "confused about the boil water notice"})
    [manager_view] = open_groups(desk, "mia")
    [stakeholder_view] = open_groups(desk, "sam")
    [day_view] = open_groups(desk, "sam", "24h")
    assert manager_view["id"] == stakeholder_view["id"] == day_view["id"]
    assert stakeholder_view["count"] == 2


def test_one_agent_repeating_a_flag_does_not_inflate_the_count(desk, store):
    """The same agent on the same topic within a minute is one flag (200, not stored again)."""
    first = desk.post("ana", "/flags", {"text": "no buses on route 22"})
    again = desk.post("ana", "/flags", {"text": "No buses on route 22!"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json["duplicate"] is True and again.json["id"] == first.json["id"]
    other = desk.post("ben", "/flags", {"text": "no buses on route 22"})
    assert other.status_code == 201
    [group] = open_groups(desk)
    assert group["count"] == 2 and group["flags"] == 2
    assert len([e for e in store.audit.read() if e["action"] == "flag.raised"]) == 2


def test_after_a_minute_a_repeat_is_kept_but_still_one_agent(desk, monkeypatch):
    """Later repeats are kept (they become complaints if promoted) but count one agent."""
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start - timedelta(minutes=5))
    assert desk.post("ana", "/flags", {"text": "curfew questions"}).status_code == 201
    monkeypatch.setattr(clock, "now", lambda: start)
    assert desk.post("ana", "/flags", {"text": "curfew questions"}).status_code == 201
    [group] = open_groups(desk)
    assert group["count"] == 1 and group["flags"] == 2


def test_the_window_counts_only_recent_flags(desk, monkeypatch):
    """A group heard two hours ago is not in the last hour, but is in the last three."""
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start - timedelta(hours=2))
    desk.post("ana", "/flags", {"text": "icy sidewalks on Centre St"})
    monkeypatch.setattr(clock, "now", lambda: start)
    assert open_groups(desk, window="60m") == []
    [group] = open_groups(desk, window="3h")
    assert group["count"] == 1
    desk.post("ben", "/flags", {"text": "icy sidewalk centre street"})
    [recent] = open_groups(desk, window="60m")
    assert recent["id"] == group["id"] and recent["count"] == 1


def test_a_flag_may_name_a_category_by_its_name(desk, store):
    """The optional category is taken from the catalogue by code, name or alias."""
    assert desk.post("mia", "/categories", {"code": "no_heat", "name": "No heat"}).status_code == 201
    response = desk.post("ana", "/flags", {"text": "whole building has no heat", "category": "no HEAT"})
    assert response.status_code == 201
    assert response.json["category"] == "no_heat"
    assert open_groups(desk)[0]["categories"] == ["no_heat"]


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({}, "text", 422),
        ({"text": "   "}, "text", 422),
        ({"text": 12}, "text", 422),
        ({"text": "x" * 201}, "text", 422),
        ({"text": "shelter full", "category": "no such thing"}, "category", 422),
        ({"text": "shelter full", "zip": "2124"}, "zip", 422),
        ({"text": "shelter full", "zip": "02124-1234"}, "zip", 422),
        ({"text": "shelter full", "zip": 2124}, "zip", 422),
    ],
)
def test_bad_flags_are_refused_naming_the_field(desk, store, body, field, status):
    """Every mistake answers in the API's error shape, naming the field; nothing is stored."""
    response = desk.post("ana", "/flags", body)
    assert response.status_code == status, response.json
    assert response.json["error"]["field"] == field
    assert open_groups(desk) == []


def test_a_body_that_is_not_an_object_is_a_400(desk):
    """A list or no JSON at all names the body."""
    response = desk.post("ana", "/flags", ["shelter full"])
    assert response.status_code == 400 and response.json["error"]["field"] == "body"
    bad_window = desk.get("mia", "/flags?window=soon")
    assert bad_window.status_code == 422 and bad_window.json["error"]["field"] == "window"
    too_long = desk.get("mia", "/flags?window=30d")
    assert too_long.status_code == 422 and too_long.json["error"]["field"] == "window"
    bad_status = desk.get("mia", "/flags?status=maybe")
    assert bad_status.status_code == 422 and bad_status.json["error"]["field"] == "status"


# --- who may do what -------------------------------------------------------------------------


def test_roles(desk, app, client):
    """Agents raise flags, managers and stakeholders read them, managers close them."""
    group_id = desk.post("ana", "/flags", {"text": "generator noise on Elm St"}).json["group_id"]
    for who in ("mia", "sam"):
        refused = desk.post(who, "/flags", {"text": "shelter full"})
        assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    assert desk.get("ana", "/flags").status_code == 403
    assert desk.get("sam", "/flags").status_code == 200
    for action in ("promote", "dismiss"):
        assert desk.post("ana", f"/flags/{group_id}/{action}", {}).status_code == 403
        assert desk.post("sam", f"/flags/{group_id}/{action}", {}).status_code == 403
    anonymous = app.test_client()
    assert anonymous.get("/api/v1/flags").status_code == 401
    wrong_token = {"Authorization": "Bearer cc_not-a-token"}
    assert anonymous.post("/api/v1/flags", json={"text": "x"}, headers=wrong_token).status_code == 401
    assert anonymous.post(f"/api/v1/flags/{group_id}/dismiss", headers=wrong_token).status_code == 401
    assert anonymous.post("/api/v1/flags", json={"text": "x"}).status_code == 401  # before any CSRF check
    assert [g["id"] for g in open_groups(desk)] == [group_id]


def test_share_link_viewers_do_not_see_flags(desk, app, auth):
    """A share link shows the dashboard, not agents' unchecked words (they may name callers)."""
    desk.post("ana", "/flags", {"text": "caller at 12 Elm St says shelter is full"})
    link = desk.post("mia", "/share-links", {"expires_in": 3600}).json
    viewer = app.test_client()
    viewer.get(link["url"].replace("http://localhost", ""))
    page = viewer.get("/dashboard")
    assert page.status_code == 200
    assert "flags-panel" not in page.get_data(as_text=True)
    assert viewer.get("/api/v1/flags").status_code == 403


@pytest.mark.parametrize(
    ("role", "path", "panel", "buttons", "dialog"),
    [
        (Role.MANAGER, "/manager", True, True, False),
        (Role.MANAGER, "/dashboard", True, False, False),
        (Role.MANAGER, "/agent", False, False, False),
        (Role.STAKEHOLDER, "/dashboard", True, False, False),
        (Role.ADMIN, "/dashboard", False, False, False),
        (Role.AGENT, "/agent", False, False, True),
    ],
)
def test_each_page_shows_flags_to_whom_it_may(auth, client, role, path, panel, buttons, dialog):
    """The panel for FLAG_READERS (actions on the console only); the dialog for agents only."""
    auth.login_as(role)
    html = client.get(path).get_data(as_text=True)
    assert ('id="flags-panel"' in html) is panel
    assert ('data-manage="1"' in html) is buttons
    assert ('id="flag-dialog"' in html) is dialog
    assert ('aria-keyshortcuts="F"' in html) is dialog


def test_cookie_writes_need_the_csrf_token(auth, client):
    """An agent signed in with a cookie must send the page's CSRF token."""
    auth.login_as(Role.AGENT)
    refused = client.post("/api/v1/flags", json={"text": "shelter full"})
    assert refused.status_code == 400
    accepted = client.post("/api/v1/flags", json={"text": "shelter full"}, headers=auth.csrf_headers())
    assert accepted.status_code == 201


# --- promoting and dismissing ---------------------------------------------------------------


def test_promote_makes_a_category_whose_complaints_are_counted(desk, store, monkeypatch):
    """Promotion creates the category; each flag becomes a complaint at its time, with its ZIP."""
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start - timedelta(minutes=30))
    desk.post("ana", "/flags", {"text": "shelter on Main St full", "zip": "02124"})
    monkeypatch.setattr(clock, "now", lambda: start)
    desk.post("ben", "/flags", {"text": "main st shelter is full", "zip": "02124"})
    desk.post("cy", "/flags", {"text": "shelter main st full"})
    [group] = open_groups(desk)

    response = desk.post("mia", f"/flags/{group['id']}/promote", {"name": "Shelter full"})
    assert response.status_code == 200, response.json
    result = response.json
    assert result["created"] is True and result["complaints"] == 3
    assert result["category"]["code"] == "shelter_full" and result["category"]["name"] == "Shelter full"
    assert result["group"]["status"] == "promoted" and result["group"]["category"] == "shelter_full"
    codes = [c["code"] for c in desk.get("ana", "/categories").json["categories"]]
    assert "shelter_full" in codes

    trends = desk.get("sam", "/trends?window=60m&bucket=1m").json
    assert trends["totals"]["shelter_full"] == 3
    series = trends["series"]["shelter_full"]
    assert series[-31] == 1 or series[-30] == 1  # the first flag's own minute, half an hour ago
    in_zip = desk.get("sam", "/trends?window=60m&bucket=60m&zip=02124").json
    assert in_zip["totals"]["shelter_full"] == 2
    records = [c for c in store.complaints.recent(10) if c["category"] == "shelter_full"]
    assert sorted(r["occurred_at"] for r in records)[0] == clock.iso(start - timedelta(minutes=30))
    assert {r["source"] for r in records} == {f"flag:{group['id']}"}

    assert open_groups(desk) == []  # closed: off the panels
    [closed] = desk.get("mia", "/flags?status=promoted").json["groups"]
    assert closed["id"] == group["id"] and closed["closed_by"] == desk.users["mia"].username
    again = desk.post("max", f"/flags/{group['id']}/promote", {})
    assert again.status_code == 409 and again.json["error"]["code"] == "flag_closed"
    actions = [e["action"] for e in store.audit.read()]
    assert actions.index("category.created") < actions.index("flag.promoted")
    [promoted] = [e for e in store.audit.read() if e["action"] == "flag.promoted"]
    assert promoted["subject"] == f"flag_group:{group['id']}"
    assert promoted["details"]["category"] == "shelter_full" and promoted["details"]["complaints"] == 3


def test_promote_into_an_existing_category_and_by_default_name(desk):
    """A name the catalogue knows uses that category; without a name the group's text names it."""
    desk.post("mia", "/categories", {"code": "no_heat", "name": "No heat", "aliases": ["heat out"]})
    first = desk.post("ana", "/flags", {"text": "heat out in the Wilson apartments"}).json["group_id"]
    second = desk.post("ben", "/flags", {"text": "rats near the food bank"}).json["group_id"]
    joined = desk.post("mia", f"/flags/{first}/promote", {"name": "Heat out"})
    assert joined.status_code == 200 and joined.json["created"] is False
    assert joined.json["category"]["code"] == "no_heat" and joined.json["complaints"] == 1
    named = desk.post("mia", f"/flags/{second}/promote")
    assert named.status_code == 200 and named.json["created"] is True
    assert named.json["category"]["name"] == "Rats near the food bank"
    totals = desk.get("sam", "/trends?window=60m&bucket=60m").json["totals"]
    assert totals["no_heat"] == 1 and totals["rats_near_the_food_bank"] == 1


def test_promote_with_a_bad_body_names_the_field(desk):
    """A code that is not lower_snake_case is refused and the group stays open."""
    group_id = desk.post("ana", "/flags", {"text": "sandbag pickup"}).json["group_id"]
    bad = desk.post("mia", f"/flags/{group_id}/promote", {"name": "Sandbags", "code": "Sand Bags!"})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "code"
    long_name = desk.post("mia", f"/flags/{group_id}/promote", {"name": "x" * 121})
    assert long_name.status_code == 422 and long_name.json["error"]["field"] == "name"
    assert [g["id"] for g in open_groups(desk)] == [group_id]
    assert desk.post("mia", "/flags/99999/promote", {}).status_code == 404
    assert desk.post("mia", "/flags/99999/dismiss").status_code == 404


def test_dismiss_closes_the_group_and_a_new_flag_starts_afresh(desk, store):
    """A dismissed group leaves the panels (audited); the topic heard again is a new group."""
    group_id = desk.post("ana", "/flags", {"text": "aliens on Tremont St"}).json["group_id"]
    response = desk.post("mia", f"/flags/{group_id}/dismiss")
    assert response.status_code == 200
    assert response.json["group"]["status"] == "dismissed"
    assert open_groups(desk) == []
    assert desk.post("max", f"/flags/{group_id}/dismiss").status_code == 409
    assert desk.post("max", f"/flags/{group_id}/promote", {}).status_code == 409
    again = desk.post("ben", "/flags", {"text": "aliens on tremont street"})
    assert again.status_code == 201 and again.json["group_id"] != group_id
    [dismissed] = [e for e in store.audit.read() if e["action"] == "flag.dismissed"]
    assert dismissed["actor"] == desk.users["mia"].username
    assert dismissed["subject"] == f"flag_group:{group_id}"
    assert "trends" not in str(desk.get("sam", "/trends?window=60m").json["totals"])


def test_flags_are_in_the_openapi_document(client):
    """The routes are described (the route/document comparison is in test_api)."""
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"/flags", "/flags/{group_id}/promote", "/flags/{group_id}/dismiss"} <= set(paths)
    assert "201" in paths["/flags"]["post"]["responses"]


# --- live, on the real server ----------------------------------------------------------------


def listen(served_app, namespace: str, token: str, event: str):
    """Connect a real client; return it, the messages of ``event`` and an Event set on each."""
    client = socketio.Client(reconnection=False)
    received: list[dict] = []
    arrived = threading.Event()
    welcomed = threading.Event()

    def on_message(data):
        received.append(data)
        arrived.set()

    client.on(event, on_message, namespace=namespace)
    client.on(names.SESSION_WELCOME, lambda _data: welcomed.set(), namespace=namespace)
    client.connect(served_app.url, namespaces=[namespace], transports=["websocket"], auth={"token": token})
    assert welcomed.wait(5), "not welcomed"
    return client, received, arrived


@pytest.mark.served
def test_managers_and_stakeholders_receive_flag_raised_live(served_app):
    """A real client on /manager (and a stakeholder's on /dashboard) gets flag.raised at once."""
    agent = served_app.make_user(Role.AGENT)
    manager = served_app.make_user(Role.MANAGER)
    stakeholder = served_app.make_user(Role.STAKEHOLDER)
    console, on_console, console_got = listen(
        served_app, names.MANAGER, served_app.token_for(manager), names.FLAG_RAISED
    )
    board, on_board, board_got = listen(
        served_app, names.DASHBOARD, served_app.token_for(stakeholder), names.FLAG_RAISED
    )
    changed = threading.Event()
    console.on(names.FLAG_CHANGED, lambda _data: changed.set(), namespace=names.MANAGER)
    try:
        text = f"sinkhole on Adams St near number {agent.id}"
        response = requests.post(
            f"{served_app.url}/api/v1/flags",
            json={"text": text, "zip": "02122"},
            headers={"Authorization": f"Bearer {served_app.token_for(agent)}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        assert console_got.wait(5), "the manager's console did not get flag.raised"
        assert board_got.wait(5), "the stakeholder's dashboard did not get flag.raised"
        group = on_console[-1]["group"]
        assert group["id"] == response.json()["group_id"] and group["text"] == text
        assert group["count"] == 1 and group["zips"] == ["02122"]
        assert on_console[-1]["flag"]["text"] == text and on_console[-1]["flag"]["zip"] == "02122"
        assert "user_id" not in str(on_board[-1])

        dismissed = served_app.session_for(manager).post(
            f"{served_app.url}/api/v1/flags/{group['id']}/dismiss"
        )
        assert dismissed.status_code == 200, dismissed.text
        assert changed.wait(5), "flag.changed did not arrive"
    finally:
        console.disconnect()
        board.disconnect()


def test_promoting_a_group_of_more_than_one_intake_batch_counts_every_flag(store, monkeypatch):
    """A big group is fed to the intake in batches it accepts: no flag is lost on promotion."""
    from crisis_console.services import flags as flag_rules

    monkeypatch.setattr(flag_rules, "MAX_BATCH", 4)  # the intake's limit, made small to see batches
    service = flag_rules.Flags(store)
    for agent_id in range(10):
        service.raise_flag({"text": "sandbags at the library"}, user_id=agent_id, actor=f"agent{agent_id}")
    result = service.promote(int(service.groups()[0]["id"]), {"name": "Sandbags"}, actor="manager")
    assert result["complaints"] == 10
    assert store.complaints.length() == 10
