"""The JSON API: sessions, tokens, CSRF, users, audit, error shapes."""

from __future__ import annotations

import re

from crisis_console.roles import Role
from tests.helpers import PASSWORD


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def test_token_authenticates_api_requests(auth, client):
    """A bearer token acts as its user, without cookies."""
    user = auth.make_user(Role.ADMIN)
    token = auth.accounts.create_token(user.username, "ci")
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json["user"]["username"] == user.username
    assert "Set-Cookie" not in response.headers


def test_tokens_are_stored_only_hashed(auth, store):
    """The token string is nowhere in Redis."""
    user = auth.make_user(Role.AGENT)
    token = auth.accounts.create_token(user.username)
    for key in store.redis.scan_iter(match=store.keys.pattern()):
        kind = store.redis.type(key)
        if kind == "hash":
            assert token not in str(store.redis.hgetall(key))
        elif kind == "string":
            assert token not in str(store.redis.get(key))
        elif kind == "stream":
            assert token not in str(store.redis.xrange(key))
    assert token not in key


def test_bad_and_revoked_tokens_get_401(auth, client):
    """An unknown token, and a revoked one, are refused."""
    user = auth.make_user(Role.MANAGER)
    token = auth.accounts.create_token(user.username)
    assert client.get("/api/v1/me", headers=bearer("cc_not-a-token")).status_code == 401
    token_id = auth.accounts.tokens(user.id)[0]["id"]
    auth.accounts.revoke_token(user.id, token_id, actor="test")
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_disabled_users_token_stops_at_once(auth, client):
    """Disabling a user makes their tokens useless immediately."""
    user = auth.make_user(Role.MANAGER)
    token = auth.accounts.create_token(user.username)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    auth.accounts.set_active(user.id, False, actor="test")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_bearer_writes_need_no_csrf_token(auth, client):
    """Integrations with a token are not asked for a CSRF token."""
    admin = auth.make_user(Role.ADMIN)
    token = auth.accounts.create_token(admin.username)
    response = client.post(
        "/api/v1/users",
        json={"username": "newagent", "role": "agent", "password": PASSWORD, "team": "North"},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.json
    assert response.json["user"]["team"] == "North"


def test_cookie_writes_need_the_csrf_token(auth, client):
    """A cookie-authenticated API write without X-CSRFToken is refused; with it, it passes."""
    auth.make_user(Role.ADMIN, username="cookieadmin")
    login = client.post("/api/v1/session", json={"username": "cookieadmin", "password": PASSWORD})
    assert login.status_code == 201
    body = {"username": "csrfagent", "role": "agent", "password": PASSWORD}
    refused = client.post("/api/v1/users", json=body)
    assert refused.status_code == 400
    assert refused.json["error"] == {
        "code": "csrf_failed",
        "message": refused.json["error"]["message"],
        "field": "csrf_token",
    }
    accepted = client.post("/api/v1/users", json=body, headers={"X-CSRFToken": login.json["csrf_token"]})
    assert accepted.status_code == 201


def test_api_session_sign_in_errors_name_the_field(client):
    """Missing fields are 422 naming the field; a non-object body is 400 naming ``body``."""
    response = client.post("/api/v1/session", json={"username": "x"})
    assert response.status_code == 422
    assert response.json["error"]["field"] == "password"
    response = client.post("/api/v1/session", data="not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["field"] == "body"
    response = client.post("/api/v1/session", json={"username": "ghost", "password": "wrong password"})
    assert response.status_code == 401


def test_api_sign_out(auth, client):
    """DELETE /session ends the cookie session."""
    auth.make_user(Role.AGENT, username="leaver")
    login = client.post("/api/v1/session", json={"username": "leaver", "password": PASSWORD})
    response = client.delete("/api/v1/session", headers={"X-CSRFToken": login.json["csrf_token"]})
    assert response.status_code == 204
    assert client.get("/api/v1/me").status_code == 401


def test_user_errors_name_the_field(auth, client):
    """Bad user input: short password, unknown role, taken name — each names its field."""
    admin = auth.make_user(Role.ADMIN)
    headers = bearer(auth.accounts.create_token(admin.username))
    cases = [
        ({"username": "ok.name", "role": "agent", "password": "short"}, 422, "password"),
        ({"username": "ok.name", "role": "boss", "password": PASSWORD}, 422, "role"),
        ({"username": "Bad Name!", "role": "agent", "password": PASSWORD}, 422, "username"),
        ({"username": admin.username, "role": "agent", "password": PASSWORD}, 409, "username"),
        ({"username": ["x"], "role": "agent", "password": PASSWORD}, 422, "username"),
        ({"username": "ok.name", "role": "agent", "password": 12345678901}, 422, "password"),
    ]
    for body, status, field in cases:
        response = client.post("/api/v1/users", json=body, headers=headers)
        assert response.status_code == status, (body, response.json)
        assert response.json["error"]["field"] == field


def test_patch_user_changes_role_team_and_active(auth, client):
    """An admin changes a user through the API; unknown fields are refused."""
    admin = auth.make_user(Role.ADMIN)
    headers = bearer(auth.accounts.create_token(admin.username))
    agent = auth.make_user(Role.AGENT)
    response = client.patch(
        f"/api/v1/users/{agent.id}", json={"role": "manager", "team": "Days"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json["user"]["role"] == "manager"
    response = client.patch(f"/api/v1/users/{agent.id}", json={"active": "no"}, headers=headers)
    assert response.status_code == 422
    assert response.json["error"]["field"] == "active"
    response = client.patch(f"/api/v1/users/{agent.id}", json={"colour": "red"}, headers=headers)
    assert response.json["error"]["field"] == "colour"
    assert client.patch("/api/v1/users/99999", json={"team": "x"}, headers=headers).status_code == 404


def test_error_shapes_for_unknown_routes_and_methods(client):
    """404 and 405 on the API are JSON in the contract's shape."""
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert set(response.json["error"]) >= {"code", "message"}
    response = client.put("/api/v1/me")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"


def test_pages_get_html_error_pages(client):
    """A missing page is an HTML page, not JSON."""
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Page not found" in response.get_data(as_text=True)


def test_openapi_document_lists_the_routes(app, client):
    """The API describes itself, every route of it."""
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert {"/session", "/me", "/users", "/audit", "/events", "/scripts/{script_id}/push", "/pushes"} <= set(
        document["paths"]
    )
    routes = {
        re.sub(r"<(?:int:)?(\w+)>", r"<\1>", rule.rule.removeprefix("/api/v1"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and "any(" not in rule.rule
    }
    documented = {re.sub(r"{(\w+)}", r"<\1>", path) for path in document["paths"]}
    assert routes - documented == {"/openapi.json"}


def test_redis_failure_mid_request_is_a_503_not_a_crash(auth, client, store, monkeypatch):
    """If Redis fails while a request is served, pages and API answer 503 in their own format."""
    import redis

    auth.login_as(Role.MANAGER)

    def broken(*_args):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(store.sessions, "user_id", broken)
    page = client.get("/manager", headers={"Accept": "text/html"})
    assert page.status_code == 503
    assert "data store is unavailable" in page.get_data(as_text=True)
    api = client.get("/api/v1/me")
    assert api.status_code == 503
    assert api.json["error"]["code"] == "store_unavailable"
