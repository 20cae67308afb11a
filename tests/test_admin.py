"""The admin users page: add, disable, enable, reset password, role and team, tokens."""

from __future__ import annotations

from crisis_console.roles import Role
from tests.helpers import PASSWORD


def test_admin_adds_each_role_and_each_lands_on_their_page(auth, client):
    """The story of the issue: an admin creates a manager, an agent and a stakeholder."""
    auth.login_as(Role.ADMIN)
    for name, role in (("mgr1", "manager"), ("agt1", "agent"), ("stk1", "stakeholder")):
        response = auth.post(
            "/admin/users",
            {"username": name, "role": role, "password": PASSWORD, "display_name": name.upper()},
        )
        assert response.status_code == 302
    page = client.get("/admin/users").get_data(as_text=True)
    assert all(name in page for name in ("mgr1", "agt1", "stk1"))
    auth.logout()
    for name, home in (("mgr1", "/manager"), ("agt1", "/agent"), ("stk1", "/dashboard")):
        assert auth.login(name).headers["Location"] == home
        assert client.get(home).status_code == 200
        auth.logout()


def test_add_form_errors_keep_what_was_typed(auth, client):
    """A bad password is named on the form, and the other fields are kept (not the password)."""
    auth.login_as(Role.ADMIN)
    response = auth.post(
        "/admin/users", {"username": "keepme", "role": "agent", "team": "Blue", "password": "short"}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'value="keepme"' in page and 'value="Blue"' in page
    assert 'id="password-error"' in page
    assert "short" not in page.split('id="new-password"')[1].split(">")[0]


def test_disable_enable_and_reset_password(auth, client):
    """Disabling stops sign-in at once, enabling restores it, a reset sets a new password."""
    auth.login_as(Role.ADMIN)
    target = auth.make_user(Role.AGENT)
    assert auth.post(f"/admin/users/{target.id}/disable").status_code == 302
    assert "disabled" in client.get("/admin/users").get_data(as_text=True)
    auth.logout()
    assert auth.login(target.username).status_code == 401
    auth.login_as(Role.ADMIN)
    auth.post(f"/admin/users/{target.id}/enable")
    auth.post(f"/admin/users/{target.id}/password", {"password": "fresh password 42"})
    auth.logout()
    assert auth.login(target.username, "fresh password 42").status_code == 302


def test_admin_cannot_disable_or_demote_themselves(auth, client):
    """Locking the last door from inside is refused with a message."""
    admin = auth.login_as(Role.ADMIN)
    response = auth.post(f"/admin/users/{admin.id}/disable")
    assert response.status_code == 302
    assert "cannot disable your own account" in client.get("/admin/users").get_data(as_text=True)
    auth.post(f"/admin/users/{admin.id}/role", {"role": "agent", "team": ""})
    assert client.get("/admin/users").status_code == 200


def test_role_and_team_change(auth, client):
    """An admin moves an agent to another team and makes a stakeholder a manager."""
    auth.login_as(Role.ADMIN)
    agent = auth.make_user(Role.AGENT, team="North")
    auth.post(f"/admin/users/{agent.id}/role", {"role": "agent", "team": "South"})
    assert auth.accounts.get(agent.id).team == "South"
    response = auth.post(f"/admin/users/{agent.id}/role", {"role": "emperor", "team": "South"})
    assert response.status_code == 302
    assert "Role must be one of" in client.get("/admin/users").get_data(as_text=True)


def test_token_is_shown_once_and_can_be_revoked(auth, client):
    """A new token appears on the page once; revoking it stops it."""
    auth.login_as(Role.ADMIN)
    target = auth.make_user(Role.MANAGER)
    page = auth.post(f"/admin/users/{target.id}/tokens", {"name": "dashboard kiosk"}).get_data(as_text=True)
    token = page.split('<code id="new-token">')[1].split("</code>")[0]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert token not in client.get("/admin/users").get_data(as_text=True)
    token_id = auth.accounts.tokens(target.id)[0]["id"]
    auth.post(f"/admin/users/{target.id}/tokens/{token_id}/revoke")
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_unknown_user_ids_are_handled(auth, client):
    """Actions on a user that does not exist say so instead of failing."""
    auth.login_as(Role.ADMIN)
    assert auth.post("/admin/users/424242/disable").status_code == 302
    assert "No user with id 424242" in client.get("/admin/users").get_data(as_text=True)
