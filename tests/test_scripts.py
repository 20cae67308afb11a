"""Events and scripts through the API: declare, write, review, approve, version, import."""

from __future__ import annotations

import pytest

from crisis_console.roles import Role


class Manager:
    """A manager calling the API with a bearer token."""

    def __init__(self, client, auth, name: str | None = None):
        self.user = auth.make_user(Role.MANAGER, username=name)
        self.headers = {"Authorization": f"Bearer {auth.accounts.create_token(self.user.username)}"}
        self.client = client

    def post(self, url: str, body: dict | None = None):
        """POST JSON."""
        return self.client.post(f"/api/v1{url}", json=body or {}, headers=self.headers)

    def patch(self, url: str, body: dict):
        """PATCH JSON."""
        return self.client.patch(f"/api/v1{url}", json=body, headers=self.headers)

    def get(self, url: str):
        """GET."""
        return self.client.get(f"/api/v1{url}", headers=self.headers)


@pytest.fixture
def ann(client, auth):
    """The emergency manager who writes scripts."""
    return Manager(client, auth)


@pytest.fixture
def bob(client, auth):
    """A second manager who reviews them."""
    return Manager(client, auth)


STORM = {
    "name": "Winter Storm — Level 2",
    "kind": "winter_storm",
    "severity": "severe",
    "areas": ["Dorchester", "Roxbury"],
    "details": {
        "hotline": "311",
        "website": "https://www.boston.gov/winter",
        "shelter_list": "- BCYF Blackstone",
    },
}


def test_event_is_declared_and_stood_down(ann, store):
    """A draft event is declared (active) and stood down (closed); each step is audited."""
    event = ann.post("/events", STORM)
    assert event.status_code == 201 and event.json["status"] == "draft"
    event_id = event.json["id"]
    assert ann.post(f"/events/{event_id}/declare").json["status"] == "active"
    assert [e["id"] for e in ann.get("/events?status=active").json["events"]] == [event_id]
    again = ann.post(f"/events/{event_id}/declare")
    assert again.status_code == 409 and "state: active" in again.json["error"]["message"]
    assert ann.post(f"/events/{event_id}/stand-down").json["status"] == "closed"
    actions = [e["action"] for e in store.audit.read() if e["subject"] == f"event:{event_id}"]
    changes = [action for action in actions if action.startswith("event.")]
    assert changes == ["event.created", "event.declared", "event.stood_down"]
    assert set(actions) - set(changes) == {"cap.published"}, "each change is published to CAP at once"


def test_event_input_errors_name_the_field(ann):
    """Bad event input is a 422 naming the field."""
    for body, field in (
        ({**STORM, "kind": "volcano"}, "kind"),
        ({**STORM, "severity": "huge"}, "severity"),
        ({**STORM, "name": ""}, "name"),
        ({**STORM, "areas": [1, 2]}, "areas"),
        ({**STORM, "details": ["x"]}, "details"),
    ):
        response = ann.post("/events", body)
        assert response.status_code == 422, body
        assert response.json["error"]["field"] == field


def new_script(manager, **extra):
    """Create a script and return its JSON."""
    body = {"title": "Trash pickup", "topic": "Safety", "language": "en", "body": "Trash is **delayed**."}
    response = manager.post("/scripts", {**body, **extra})
    assert response.status_code == 201, response.json
    return response.json


def test_two_person_rule_and_states(ann, bob, store):
    """The author cannot approve; a second manager can; every step is audited."""
    script = new_script(ann)
    assert (script["state"], script["version"]) == ("draft", 1)
    premature = bob.post(f"/scripts/{script['id']}/approve")
    assert premature.status_code == 409
    assert premature.json["error"]["code"] == "illegal_transition"
    assert "state: draft" in premature.json["error"]["message"]
    assert ann.post(f"/scripts/{script['id']}/submit").json["state"] == "in_review"
    own = ann.post(f"/scripts/{script['id']}/approve")
    assert own.status_code == 403
    assert own.json["error"]["code"] == "two_person_rule"
    approved = bob.post(f"/scripts/{script['id']}/approve").json
    assert approved["state"] == "approved" and approved["live_version"] == 1
    actions = [e["action"] for e in store.audit.read() if e["subject"] == f"script:{script['id']}"]
    assert actions == ["script.created", "script.submitted", "script.approved"]


def test_a_reviewer_who_edits_cannot_approve(ann, bob, auth, client):
    """Editing a script in review makes the editor an author: a third manager must approve."""
    script = new_script(ann)
    ann.post(f"/scripts/{script['id']}/submit")
    bob.patch(f"/scripts/{script['id']}", {"body": "Trash is delayed until Thursday."})
    bob.post(f"/scripts/{script['id']}/submit")
    assert bob.post(f"/scripts/{script['id']}/approve").status_code == 403
    assert ann.post(f"/scripts/{script['id']}/approve").status_code == 403
    cat = Manager(client, auth)
    assert cat.post(f"/scripts/{script['id']}/approve").status_code == 200


def test_editing_approved_script_makes_a_new_version_with_a_diff(ann, bob):
    """v1 stays live while v2 is drafted; the diff shows what changed."""
    script = new_script(ann)
    ann.post(f"/scripts/{script['id']}/submit")
    bob.post(f"/scripts/{script['id']}/approve")
    edited = ann.patch(f"/scripts/{script['id']}", {"body": "Trash is delayed until **Thursday**."}).json
    assert (edited["state"], edited["version"], edited["live_version"]) == ("draft", 2, 1)
    assert [v["version"] for v in edited["versions"]] == [2, 1]
    diff = ann.get(f"/scripts/{script['id']}/diff?from=1&to=2").json["lines"]
    assert {"kind": "removed", "text": "Trash is **delayed**."} in diff
    assert {"kind": "added", "text": "Trash is delayed until **Thursday**."} in diff
    approved_list = ann.get("/scripts?state=approved").json["scripts"]
    assert script["id"] not in [s["id"] for s in approved_list]


def test_translations_are_linked_one_per_language(ann):
    """A Spanish translation joins the English script's group; a second one is refused."""
    english = new_script(ann)
    spanish = new_script(
        ann, language="es", title="Basura", body="La recolección se retrasa.", translation_of=english["id"]
    )
    assert spanish["translations"] == {"en": english["id"], "es": spanish["id"]}
    again = ann.post(
        "/scripts",
        {"title": "x", "topic": "Safety", "language": "es", "body": "y", "translation_of": english["id"]},
    )
    assert again.status_code == 409 and again.json["error"]["field"] == "language"


def test_script_input_errors_name_the_field(ann):
    """Missing or malformed fields are 422 naming them; unknown scripts 404."""
    for body, field in (
        ({"topic": "Safety", "body": "x"}, "title"),
        ({"title": "t", "topic": "Safety", "body": "x", "language": "english!"}, "language"),
        ({"title": "t", "topic": "Safety", "body": "x", "expires_at": "tomorrow"}, "expires_at"),
        ({"title": "t", "topic": "Safety", "body": "x", "event_id": 99999}, "event_id"),
        ({"title": "t", "topic": "Safety", "body": "x" * 20_001}, "body"),
    ):
        response = ann.post("/scripts", body)
        assert response.status_code == 422, body
        assert response.json["error"]["field"] == field
    assert ann.get("/scripts/99999").status_code == 404
    assert ann.post("/scripts/99999/submit").status_code == 404


def test_markdown_is_rendered_and_sanitised(ann, bob, auth, client):
    """A <script> or javascript: link in a body never reaches an agent as code."""
    script = new_script(
        ann, body="Hello <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>"
    )
    ann.post(f"/scripts/{script['id']}/submit")
    bob.post(f"/scripts/{script['id']}/approve")
    agent = auth.make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(agent.username)}"}
    current = client.get("/api/v1/scripts/current", headers=headers).json["scripts"]
    html = next(s["html"] for s in current if s["id"] == script["id"])
    assert "<script" not in html and 'href="javascript' not in html and "<img" not in html
    assert "&lt;script&gt;" in html


def test_import_fills_event_details_and_blocks_unfilled_placeholders(ann, store):
    """Importing winter-storm templates for an event makes filled en/es drafts, linked as translations."""
    event = ann.post("/events", STORM).json
    created = ann.post("/scripts/import", {"event_id": event["id"]})
    assert created.status_code == 201
    scripts = created.json["scripts"]
    assert {s["language"] for s in scripts} == {"en", "es"}
    assert all(s["state"] == "draft" and s["event_id"] == event["id"] for s in scripts)
    detail = ann.get(f"/scripts/{scripts[0]['id']}").json
    assert set(detail["translations"]) == {"en", "es"}
    body = detail["versions"][0]["body"]
    assert "{{ hotline }}" not in body and "{{ event_name }}" not in body
    # Placeholders the event does not fill stay visible and block submission.
    leftovers = [s for s in scripts if "{{" in ann.get(f"/scripts/{s['id']}").json["versions"][0]["body"]]
    for script in leftovers:
        refused = ann.post(f"/scripts/{script['id']}/submit")
        assert refused.status_code == 422
        assert refused.json["error"]["code"] == "unfilled_placeholders"


def test_roles_for_script_routes(auth, client, ann):
    """Agents and stakeholders read scripts but cannot write or approve them."""
    script = new_script(ann)
    for role in (Role.AGENT, Role.STAKEHOLDER):
        user = auth.make_user(role)
        headers = {"Authorization": f"Bearer {auth.accounts.create_token(user.username)}"}
        assert client.get("/api/v1/scripts", headers=headers).status_code == 200
        assert client.post("/api/v1/scripts", json={}, headers=headers).status_code == 403
        assert client.post(f"/api/v1/scripts/{script['id']}/approve", headers=headers).status_code == 403


def test_expired_scripts_leave_agents_and_cannot_be_pushed(ann, bob, auth, client):
    """Past its expiry a script is no longer current, and pushing it is refused."""
    script = new_script(ann)
    ann.post(f"/scripts/{script['id']}/submit")
    bob.post(f"/scripts/{script['id']}/approve")
    agent = auth.make_user(Role.AGENT)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(agent.username)}"}
    assert script["id"] in [
        s["id"] for s in client.get("/api/v1/scripts/current", headers=headers).json["scripts"]
    ]
    assert ann.patch(f"/scripts/{script['id']}", {"expires_at": "2020-01-01T00:00:00Z"}).status_code == 200
    assert script["id"] not in [
        s["id"] for s in client.get("/api/v1/scripts/current", headers=headers).json["scripts"]
    ]
    refused = ann.post(f"/scripts/{script['id']}/push", {"audience": "all"})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "not_approved"


def test_push_audience_follows_role_team_and_state(auth, store):
    """Only active agents are pushed to; a disabled agent or one made manager drops out."""
    from crisis_console.services.pushes import Pushes

    north = auth.make_user(Role.AGENT, team="North")
    south = auth.make_user(Role.AGENT, team="South")
    leaver = auth.make_user(Role.AGENT, team="North")
    promoted = auth.make_user(Role.AGENT, team="North")
    auth.accounts.set_active(leaver.id, False, actor="test")
    auth.accounts.set_role_and_team(promoted.id, "manager", "North", actor="test")
    pushes = Pushes(store)
    assert pushes.audience(["North"]) == [north.id]
    assert set(pushes.audience("all")) == {north.id, south.id}
    auth.accounts.set_active(leaver.id, True, actor="test")
    assert set(pushes.audience(["North"])) == {north.id, leaver.id}


def test_push_audience_errors_name_the_field(ann, bob, auth):
    """An audience that is neither "all" nor a list of teams is a 422 naming it."""
    auth.make_user(Role.AGENT, team="North")
    script = new_script(ann)
    ann.post(f"/scripts/{script['id']}/submit")
    bob.post(f"/scripts/{script['id']}/approve")
    for audience in (5, [1, 2], [" "]):
        response = ann.post(f"/scripts/{script['id']}/push", {"audience": audience})
        assert response.status_code == 422, audience
        assert response.json["error"]["field"] == "audience"
    assert (
        ann.post(f"/scripts/{script['id']}/push", {"audience": ["Nobody"]}).json["error"]["field"]
        == "audience"
    )


def test_review_page_shows_the_diff_and_enforces_the_rule(auth, client):
    """The author sees why they cannot approve; another manager sees the diff and the button."""
    author = auth.login_as(Role.MANAGER)
    token = {"Authorization": f"Bearer {auth.accounts.create_token(author.username)}"}
    reviewer = auth.make_user(Role.MANAGER)
    reviewer_token = {"Authorization": f"Bearer {auth.accounts.create_token(reviewer.username)}"}
    body = {"title": "Shelters", "topic": "Safety", "language": "en", "body": "Open until 6."}
    script = client.post("/api/v1/scripts", json=body, headers=token).json
    client.post(f"/api/v1/scripts/{script['id']}/submit", headers=token)
    client.post(f"/api/v1/scripts/{script['id']}/approve", headers=reviewer_token)
    client.patch(f"/api/v1/scripts/{script['id']}", json={"body": "Open until 9."}, headers=token)
    client.post(f"/api/v1/scripts/{script['id']}/submit", headers=token)
    own = client.get(f"/manager/scripts/{script['id']}").get_data(as_text=True)
    assert "another manager must approve it" in own and "Approve v2" not in own
    auth.logout()
    auth.login(reviewer.username)
    page = client.get(f"/manager/scripts/{script['id']}").get_data(as_text=True)
    assert "Approve v2" in page
    assert '<span class="diff__removed">- Open until 6.</span>' in page
    assert '<span class="diff__added">+ Open until 9.</span>' in page


def test_importing_the_same_templates_again_links_the_drafts_instead_of_duplicating(ann, store):
    """A second import for the same event and hazard creates nothing and names what exists."""
    event = ann.post("/events", STORM).json
    first = ann.post("/scripts/import", {"event_id": event["id"]}).json
    again = ann.post("/scripts/import", {"event_id": event["id"], "hazard": "winter_storm"})
    assert again.status_code == 200 and again.json["scripts"] == []
    assert sorted(s["id"] for s in again.json["existing"]) == sorted(s["id"] for s in first["scripts"])
    assert again.json["id"] == first["id"]
    assert len(ann.get(f"/scripts?event_id={event['id']}").json["scripts"]) == 2
    # A retired draft no longer counts: importing then makes a fresh one.
    english = next(s for s in first["scripts"] if s["language"] == "en")
    assert ann.post(f"/scripts/{english['id']}/retire").status_code == 200
    fresh = ann.post("/scripts/import", {"event_id": event["id"]}).json
    assert [s["language"] for s in fresh["scripts"]] == ["en"] and len(fresh["existing"]) == 1


def test_the_first_version_of_an_imported_script_shows_the_diff_from_the_filled_template(auth, client):
    """The reviewer sees what the writer changed from the template text as it was filled."""
    writer = auth.login_as(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(writer.username)}"}
    event = client.post("/api/v1/events", json=STORM, headers=headers).json
    [english] = [
        s
        for s in client.post("/api/v1/scripts/import", json={"event_id": event["id"]}, headers=headers).json[
            "scripts"
        ]
        if s["language"] == "en"
    ]
    untouched = client.get(f"/manager/scripts/{english['id']}").get_data(as_text=True)
    assert (
        "the filled template winter_storm.en" in untouched and "No change yet from the template" in untouched
    )
    body = client.get(f"/api/v1/scripts/{english['id']}", headers=headers).json["versions"][0]["body"]
    edited = body.replace("{{ parking_ban_rules }}", "Cars must leave snow emergency arteries by 8 pm.")
    assert edited != body
    client.patch(f"/api/v1/scripts/{english['id']}", json={"body": edited}, headers=headers)
    page = client.get(f"/manager/scripts/{english['id']}").get_data(as_text=True)
    assert (
        '<span class="diff__added">+ ' in page and "Cars must leave snow emergency arteries by 8 pm." in page
    )
    assert '<span class="diff__removed">- ' in page and "No change yet" not in page


def test_the_console_links_imported_drafts_instead_of_offering_the_import_again(auth, client):
    """Once an event's templates are imported, its row links the drafts, with no second button."""
    manager = auth.login_as(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    event = client.post("/api/v1/events", json=STORM, headers=headers).json
    assert "Import winter storm templates" in client.get("/manager").get_data(as_text=True)
    made = client.post("/api/v1/scripts/import", json={"event_id": event["id"]}, headers=headers).json
    page = client.get("/manager").get_data(as_text=True)
    assert "Import winter storm templates" not in page
    assert all(f'href="/manager/scripts/{s["id"]}"' in page for s in made["scripts"])
