"""Every page and API route checks the role."""

from __future__ import annotations

import re

import pytest

from crisis_console.roles import Role

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
    """Without signing in, pages redirect to sign-in and the API answers 401 JSON."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        path = re.sub(r"<int:\w+>", "1", rule.rule).replace("<fmt>", "json").replace("<code>", "x")
        path = re.sub(r"<any\(([a-z]+)[^>]*\):\w+>", r"\1", path).replace("<token_id>", "abc")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method, headers={"Accept": "text/html"})
            if path.startswith("/api/"):
                assert response.status_code in (400, 401), (method, path)
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
                assert response.status_code in (302, 400), (method, path)


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
