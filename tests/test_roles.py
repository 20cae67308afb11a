"""Every page and API route checks the role."""

from __future__ import annotations

import re

import pytest

from crisis_console.roles import VIEWER, Role
from tests.helpers import AuthActions

#: Routes anyone may reach: signing in and out, the front door, the API description.
PUBLIC = {
    "static",
    "auth.login",
    "auth.logout",
    "auth.open_share_link",
    "console.index",
    "console.favicon",
    "api.openapi",
    "api.create_session",
}


def test_every_route_but_the_public_ones_declares_its_roles(app):
    """No view is left without a role check (a new route must say who may use it)."""
    unchecked = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in PUBLIC and not hasattr(app.view_functions[rule.endpoint], "allowed_roles")
    ]
    assert unchecked == []


def test_anonymous_requests_are_refused_everywhere(app, client):
    """Without signing in, pages redirect to sign-in and the API answers 401 JSON, writes included."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        path = re.sub(r"<int:\w+>", "1", rule.rule).replace("<fmt>", "json").replace("<code>", "x")
        path = re.sub(r"<any\(([a-z]+)[^>]*\):\w+>", r"\1", path).replace("<token_id>", "abc")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, headers={"Accept": "text/html"})
            if path.startswith("/api/"):
                # 401 for writes too: the sign-in check comes before the CSRF token's.
                assert response.status_code == 401, (method, path)
            elif path.startswith("/twilio/"):
                assert response.status_code == 403, (method, path)  # unsigned
            elif path.startswith("/cap/"):
                # The CAP feed is public, as county alerting systems poll it; the inbox takes a token.
                expected = (200, 404) if method == "GET" else (401,)
                assert response.status_code in expected, (method, path)
            elif path.startswith("/public"):
                # The public information page is for everyone; an event it does not show is a 404.
                assert response.status_code in (200, 404), (method, path)
            elif path.startswith("/open311/"):
                # GeoReport reading is public (as cities publish it); posting needs an api_key.
                expected = (200, 404) if method == "GET" else (403,)
                assert response.status_code in expected, (method, path)
            else:
                assert response.status_code == 302, (method, path)


PAGE_ACCESS = {
    "/manager": {Role.MANAGER},
    "/agent": {Role.AGENT, Role.MANAGER},
    "/dashboard": {Role.STAKEHOLDER, Role.MANAGER, Role.ADMIN},
    "/admin/users": {Role.ADMIN},
}


@pytest.mark.parametrize("role", list(Role))
def test_pages_are_shown_only_to_their_roles(auth, client, role):
    """Each role sees its pages and gets a 403 page elsewhere."""
    auth.login_as(role)
    for path, allowed in PAGE_ACCESS.items():
        response = client.get(path)
        if role in allowed:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 403, path
            assert "Not allowed" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT, Role.STAKEHOLDER])
def test_api_refuses_the_wrong_role_with_json(auth, client, role):
    """Admin-only API routes answer other roles with a 403 in the API's error shape."""
    auth.login_as(role)
    response = client.get("/api/v1/users")
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_audit_is_for_managers_and_admins(auth, client):
    """Stakeholders and agents cannot read the audit trail."""
    auth.login_as(Role.STAKEHOLDER)
    assert client.get("/api/v1/audit").status_code == 403
    auth.logout()
    auth.login_as(Role.MANAGER)
    assert client.get("/api/v1/audit").status_code == 200


@pytest.mark.parametrize(
    ("role", "links"),
    [
        (Role.MANAGER, ["Console", "Phone line", "Alerts", "Agent view", "Dashboard", "Categories"]),
        (Role.AGENT, ["Scripts"]),
        (Role.STAKEHOLDER, ["Dashboard"]),
        (Role.ADMIN, ["Users", "Phone lines", "Alerts", "Dashboard", "Categories"]),
    ],
)
def test_navigation_offers_each_role_its_pages(auth, client, role, links):
    """The header's navigation lists exactly the pages of the role, and each one opens."""
    auth.login_as(role)
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    nav = page.split('<nav class="site-nav"')[1].split("</nav>")[0]
    found = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav)
    assert [label for _href, label in found] == links
    for href, _label in found:
        assert client.get(href).status_code == 200, href


#: Who may ask, as the role matrix names them: nobody, each account role, a share link's viewer.
WHO = ["anonymous", *[r.value for r in Role], VIEWER]
WRITES = ("post", "put", "patch", "delete")


def api_operations(app, methods: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    """Return (METHOD, path, endpoint, documented path) for the document's operations in ``methods``."""
    document = app.test_client().get("/api/v1/openapi.json").json
    base = document["servers"][0]["url"]
    adapter = app.url_map.bind("localhost")
    found = []
    for template, operations in document["paths"].items():
        path = base + re.sub(r"\{\w+\}", "1", template)
        for method in operations:
            if method in methods:
                endpoint, _args = adapter.match(path, method=method.upper())
                found.append((method.upper(), path, endpoint, template))
    return found


def clients_for_everyone(app, auth) -> dict[str, object]:
    """Return a cookie-signed-in test client for each of WHO (none sends a CSRF token)."""
    clients = {"anonymous": app.test_client()}
    for role in Role:
        clients[role.value] = app.test_client()
        AuthActions(app, clients[role.value]).login_as(role)
    manager = auth.make_user(Role.MANAGER)
    bearer = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    link = app.test_client().post("/api/v1/share-links", json={"expires_in": 3600}, headers=bearer).json
    clients[VIEWER] = app.test_client()
    assert clients[VIEWER].get(link["url"].replace("http://localhost", "")).status_code == 302
    return clients


MANAGER, ADMIN, AGENT = {"manager"}, {"admin"}, {"agent"}
STAFF = {"manager", "admin"}
ACCOUNTS = {r.value for r in Role}
#: Who may make each write of the OpenAPI document, as API.md says, written out here rather
#: than read from the code, so that a route whose check is missing or too wide shows up.
WRITE_ROLES: dict[tuple[str, str], set[str]] = {
    ("DELETE", "/session"): ACCOUNTS,
    ("PATCH", "/me"): ACCOUNTS,
    ("POST", "/users"): ADMIN,
    ("PATCH", "/users/{user_id}"): ADMIN,
    ("POST", "/events"): MANAGER,
    ("PATCH", "/events/{event_id}"): MANAGER,
    ("POST", "/events/{event_id}/declare"): MANAGER,
    ("POST", "/events/{event_id}/stand-down"): MANAGER,
    ("POST", "/scripts"): MANAGER,
    ("POST", "/scripts/import"): MANAGER,
    ("PATCH", "/scripts/{script_id}"): MANAGER,
    ("POST", "/scripts/{script_id}/submit"): MANAGER,
    ("POST", "/scripts/{script_id}/approve"): MANAGER,
    ("POST", "/scripts/{script_id}/return"): MANAGER,
    ("POST", "/scripts/{script_id}/retire"): MANAGER,
    ("POST", "/scripts/{script_id}/push"): MANAGER,
    ("POST", "/scripts/{script_id}/announcement"): MANAGER,
    ("POST", "/channels/republish"): MANAGER,
    ("POST", "/pushes/{push_id}/ack"): AGENT,
    ("POST", "/alerts/{alert_id}/ack"): STAFF,
    ("POST", "/suggestions/draft"): MANAGER,
    ("POST", "/lines"): ADMIN,
    ("PATCH", "/lines/{line_id}"): ADMIN,
    ("DELETE", "/lines/{line_id}"): ADMIN,
    ("POST", "/announcements"): MANAGER,
    ("POST", "/announcements/{announcement_id}/submit"): MANAGER,
    ("POST", "/announcements/{announcement_id}/approve"): MANAGER,
    ("POST", "/announcements/{announcement_id}/return"): MANAGER,
    ("POST", "/announcements/{announcement_id}/activate"): MANAGER,
    ("POST", "/announcements/{announcement_id}/end"): MANAGER,
    ("POST", "/share-links"): MANAGER,
    ("DELETE", "/share-links/{link_id}"): MANAGER,
    ("POST", "/categories"): STAFF,
    ("PATCH", "/categories/{code}"): STAFF,
    ("POST", "/categories/{code}/retire"): STAFF,
    ("POST", "/categories/{code}/restore"): STAFF,
    ("POST", "/categories/{code}/merge"): STAFF,
    ("POST", "/complaints"): {"agent", "manager"},
    ("POST", "/flags"): AGENT,
    ("POST", "/flags/{group_id}/promote"): MANAGER,
    ("POST", "/flags/{group_id}/dismiss"): MANAGER,
}


def test_every_api_write_answers_401_then_403_then_asks_for_the_csrf_token(app, auth):
    """For every write of the OpenAPI document: anonymous → 401, a role not allowed → 403, both
    without a CSRF token, so a missing role check cannot hide behind ``csrf_failed``; an allowed
    cookie session without the token is then refused with 400 ``csrf_failed``."""
    clients = clients_for_everyone(app, auth)
    # Signing in is open to all, and there is no session to forge yet (see test_auth).
    operations = [op for op in api_operations(app, WRITES) if op[2] != "api.create_session"]
    assert {(method, template) for method, _path, _endpoint, template in operations} == set(WRITE_ROLES)
    wrong = []
    for method, path, _endpoint, template in operations:
        allowed = WRITE_ROLES[(method, template)]
        for who, client in clients.items():
            response = client.open(path, method=method, json={})
            code = (response.json or {}).get("error", {}).get("code")
            if who == "anonymous":
                expected, got = (401, "unauthorized"), (response.status_code, code)
            elif who not in allowed:
                expected, got = (403, "forbidden"), (response.status_code, code)
            else:
                expected, got = (400, "csrf_failed"), (response.status_code, code)
            if got != expected:
                wrong.append((method, path, who, got, expected))
    assert wrong == []


def test_bearer_writes_need_no_csrf_token_and_still_meet_the_role_check(app, auth, client):
    """A token is not a cookie: no CSRF token is asked for, and the wrong role is still a 403."""
    for role, status in ((Role.AGENT, 403), (Role.MANAGER, 201)):
        user = auth.make_user(role)
        headers = {"Authorization": f"Bearer {auth.accounts.create_token(user.username)}"}
        body = {"name": f"Flood {user.id}", "kind": "flood", "severity": "severe"}
        assert client.post("/api/v1/events", json=body, headers=headers).status_code == status


#: What the dashboard's scripts read (dashboard.js, connection.js), with the query they send:
#: all a share link's viewer may read of the API.
VIEWER_READS = {
    ("api.get_trends", ""),
    ("api.get_trends", "?window=60m&bucket=60m"),
    ("api.get_movers", "?window=60m"),
    ("api.list_events", "?status=active"),
}


def test_a_share_link_viewer_reads_only_what_the_dashboard_loads(app, auth):
    """Every GET of the OpenAPI document is a 403 for a viewer except the dashboard's own reads."""
    viewer = clients_for_everyone(app, auth)[VIEWER]
    allowed = {endpoint for endpoint, _query in VIEWER_READS}
    opened = []
    for _method, path, endpoint, _template in api_operations(app, ("get",)):
        response = viewer.get(path)
        if endpoint in allowed:
            continue
        if response.status_code != 403:
            opened.append((path, response.status_code))
    assert opened == []
    for endpoint, query in VIEWER_READS:
        path = app.url_map.bind("localhost").build(endpoint)
        assert viewer.get(path + query).status_code == 200, (path, query)
    # Only what the dashboard shows: the active events, not drafts and closed ones.
    assert viewer.get("/api/v1/events").status_code == 403
    assert viewer.get("/api/v1/events?status=closed").status_code == 403


def test_the_dashboard_reads_no_api_route_beyond_the_viewers_allowlist():
    """The scripts a viewer's dashboard loads fetch only the routes of VIEWER_READS."""
    from pathlib import Path

    static = Path(__file__).resolve().parents[1] / "crisis_console" / "static" / "js"
    fetched = set()
    for name in ("dashboard.js", "connection.js", "spikes.js", "phone.js", "api-forms.js", "localtime.js"):
        fetched |= set(re.findall(r'fetch\("(/api/v1/[a-z/.-]+)', (static / name).read_text()))
    assert fetched == {"/api/v1/trends", "/api/v1/trends/movers", "/api/v1/events"}
