"""Share links: a read-only dashboard for people without accounts, until it expires or is revoked."""

from __future__ import annotations

import time

from crisis_console.roles import Role


def make_link(client, auth, expires_in: int = 3600) -> tuple[dict, dict]:
    """A manager creates a link; return it and the manager's headers."""
    manager = auth.make_user(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    response = client.post(
        "/api/v1/share-links", json={"expires_in": expires_in, "label": "EOC wall screen"}, headers=headers
    )
    assert response.status_code == 201, response.json
    return response.json, headers


def test_link_opens_the_dashboard_and_nothing_else(app, auth):
    """The link signs a viewer in to the dashboard; other pages and API routes stay closed."""
    link, _headers = make_link(app.test_client(), auth)
    viewer = app.test_client()
    opened = viewer.get(link["url"].replace("http://localhost", ""))
    assert opened.status_code == 302 and opened.headers["Location"] == "/dashboard"
    page = viewer.get("/dashboard")
    assert page.status_code == 200 and "Shared dashboard" in page.get_data(as_text=True)
    assert viewer.get("/api/v1/trends?window=60m").status_code == 200
    assert viewer.get("/api/v1/events?status=active").status_code == 200
    for path in ("/manager", "/agent", "/admin/users"):
        assert viewer.get(path).status_code == 403, path
    assert viewer.get("/api/v1/trends/movers?window=60m").status_code == 200
    for path in ("/api/v1/scripts", "/api/v1/me", "/api/v1/audit", "/api/v1/categories"):
        assert viewer.get(path).status_code == 403, path
    # Beyond what the dashboard loads: exports, the spike history, drafts and closed events.
    for path in ("/api/v1/trends.csv", "/api/v1/complaints.csv", "/api/v1/trends/spikes", "/api/v1/events"):
        assert viewer.get(path).status_code == 403, path
    assert "/api/v1/trends.csv" not in page.get_data(as_text=True)  # so the page offers no export


def test_revoked_link_stops_at_once_and_forged_ones_never_work(app, auth, client, store):
    """Revoking ends the viewer's access (audited); a tampered token is refused."""
    link, headers = make_link(client, auth)
    viewer = app.test_client()
    viewer.get(link["url"].replace("http://localhost", ""))
    assert viewer.get("/dashboard").status_code == 200
    assert [s["id"] for s in client.get("/api/v1/share-links", headers=headers).json["share_links"]] == [
        link["id"]
    ]
    assert client.delete(f"/api/v1/share-links/{link['id']}", headers=headers).status_code == 204
    assert viewer.get("/dashboard").status_code == 302  # back to sign-in
    again = app.test_client().get(link["url"].replace("http://localhost", ""))
    assert again.status_code == 403 and "expired or was revoked" in again.get_data(as_text=True)
    assert app.test_client().get("/share/forged-token").status_code == 403
    actions = [e["action"] for e in store.audit.read() if e["subject"] == f"share:{link['id']}"]
    assert actions == ["share_link.created", "share_link.revoked"]


def test_link_expires_by_itself(app, auth, client, store):
    """When its time is up the link no longer opens (Redis expires it)."""
    link, _headers = make_link(client, auth)
    store.redis.pexpire(store.keys.share_link(link["id"]), 50)
    time.sleep(0.1)
    assert app.test_client().get(link["url"].replace("http://localhost", "")).status_code == 403


def test_share_link_input_is_checked(client, auth):
    """expires_in outside 5 minutes to 7 days is a 422 naming it; only managers make links."""
    manager = auth.make_user(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    for value in (10, 10**9, "1 day", True):
        response = client.post("/api/v1/share-links", json={"expires_in": value}, headers=headers)
        assert response.status_code == 422 and response.json["error"]["field"] == "expires_in"
    stakeholder = auth.make_user(Role.STAKEHOLDER)
    other = {"Authorization": f"Bearer {auth.accounts.create_token(stakeholder.username)}"}
    assert client.post("/api/v1/share-links", json={}, headers=other).status_code == 403


def test_live_links_are_listed_with_label_author_and_expiry(client, auth):
    """GET /share-links names each live link as the contract says; the console lists them."""
    link, headers = make_link(client, auth)
    [listed] = client.get("/api/v1/share-links", headers=headers).json["share_links"]
    assert {k: listed[k] for k in ("id", "label", "expires_at", "revoked")} == {
        "id": link["id"],
        "label": "EOC wall screen",
        "expires_at": link["expires_at"],
        "revoked": False,
    }
    assert listed["created_by"] == link["created_by"] and "token" not in listed
    auth.login(link["created_by"])
    page = client.get("/manager").get_data(as_text=True)
    assert f'data-share-id="{link["id"]}"' in page and f"/api/v1/share-links/{link['id']}" in page
    assert client.delete("/api/v1/share-links/nope", headers=headers).status_code == 404
