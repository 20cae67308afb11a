"""Signing in and out, wrong passwords, throttling, sessions that end."""

from __future__ import annotations

import pytest

from crisis_console.roles import Role
from tests.helpers import PASSWORD, csrf_from


@pytest.mark.parametrize(
    ("role", "home"),
    [
        (Role.MANAGER, "/manager"),
        (Role.AGENT, "/agent"),
        (Role.STAKEHOLDER, "/dashboard"),
        (Role.ADMIN, "/admin/users"),
    ],
)
def test_sign_in_lands_on_the_role_page(auth, client, role, home):
    """Each role lands on its own page after signing in."""
    user = auth.make_user(role)
    response = auth.login(user.username)
    assert response.status_code == 302
    assert response.headers["Location"] == home
    page = client.get(home)
    assert page.status_code == 200
    assert user.display_name in page.get_data(as_text=True)


def test_sign_in_follows_a_local_next_but_not_another_site(auth, client):
    """``next`` may only point back into the console."""
    user = auth.make_user(Role.MANAGER)
    page = client.get("/login?next=/dashboard")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "next": "/dashboard", "csrf_token": token},
    )
    assert response.headers["Location"] == "/dashboard"
    auth.logout()
    response = client.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "next": "//evil.example",
            "csrf_token": auth.csrf(),
        },
    )
    assert response.headers["Location"] == "/manager"


def test_username_is_case_insensitive(auth):
    """People type their name with capitals; it still signs them in."""
    user = auth.make_user(Role.AGENT)
    assert auth.login(user.username.upper()).status_code == 302


def test_wrong_password_is_refused_with_a_message(auth, client):
    """A wrong password shows the form again with a 401 and no session."""
    user = auth.make_user(Role.AGENT)
    response = auth.login(user.username, "not the password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert client.get("/agent").status_code == 302


def test_unknown_user_is_refused_like_a_wrong_password(auth):
    """An unknown name gets the same answer as a wrong password."""
    response = auth.login("nobody-here", "whatever password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)


def test_sign_out_ends_the_session(auth, client, store):
    """After signing out, pages send you back to sign in; both are audited."""
    user = auth.login_as(Role.MANAGER)
    assert client.get("/manager").status_code == 200
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/manager").status_code == 302
    actions = [e["action"] for e in store.audit.read() if e["subject"] == f"user:{user.id}"]
    assert actions[-2:] == ["auth.signed_in", "auth.signed_out"]


def test_sign_out_needs_the_csrf_token(auth, client):
    """A cross-site form cannot sign people out (or do any other write)."""
    auth.login_as(Role.AGENT)
    response = client.post("/logout")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/agent").status_code == 200


def test_failed_sign_ins_are_throttled_per_user(auth, client):
    """After five wrong passwords for one name, even the right one waits (429)."""
    user = auth.make_user(Role.AGENT)
    for _ in range(5):
        assert auth.login(user.username, "wrong password!").status_code == 401
    assert auth.login(user.username, "wrong password!").status_code == 429
    response = auth.login(user.username)
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    other = auth.make_user(Role.AGENT)
    assert auth.login(other.username).status_code == 302


def test_failed_sign_ins_are_throttled_per_address(auth):
    """Many wrong attempts across different names from one address are throttled too."""
    for number in range(20):
        assert auth.login(f"guess{number}", "wrong password!").status_code == 401
    assert auth.login("guess-next", "wrong password!").status_code == 429


def test_successful_sign_ins_are_not_throttled(auth):
    """A whole shift signing in from one address is never locked out."""
    for _ in range(21):
        user = auth.make_user(Role.AGENT)
        assert auth.login(user.username).status_code == 302
        auth.logout()


def test_disabled_user_is_signed_out_at_once(auth, client):
    """Disabling a user ends their session immediately and they cannot sign in again."""
    user = auth.login_as(Role.AGENT)
    assert client.get("/agent").status_code == 200
    auth.accounts.set_active(user.id, False, actor="test")
    assert client.get("/agent").status_code == 302
    assert auth.login(user.username).status_code == 401


def test_password_reset_ends_old_sessions(app, auth, client):
    """A new password ends sessions opened with the old one."""
    user = auth.login_as(Role.AGENT)
    auth.accounts.reset_password(user.id, "a brand new password", actor="test")
    assert client.get("/agent").status_code == 302
    assert auth.login(user.username, "a brand new password").status_code == 302


def test_session_survives_a_new_app_with_the_same_secret(
    app, auth, client, redis_url, prefix, tmp_path, monkeypatch
):
    """A restarted console (same secret key, same Redis) keeps people signed in."""
    from crisis_console.app import create_app
    from crisis_console.config import TestConfig

    auth.login_as(Role.AGENT)
    cookie = client.get_cookie("session")
    again = create_app(TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix))
    fresh = again.test_client()
    fresh.set_cookie("session", cookie.value)
    assert fresh.get("/agent").status_code == 200


def test_every_role_changes_its_own_password_and_other_sessions_end(app, auth, client):
    """The header links the page; a good change signs this browser in again, ends the others."""
    from crisis_console.roles import ROLES
    from tests.helpers import AuthActions

    for role in ROLES:
        user = auth.login_as(role)
        elsewhere = app.test_client()
        AuthActions(app, elsewhere).login(user.username)
        home = client.get("/", follow_redirects=True).get_data(as_text=True)
        assert 'href="/account/password"' in home, role
        page = client.get("/account/password")
        assert page.status_code == 200 and "Current password" in page.get_data(as_text=True)
        token = csrf_from(page.get_data(as_text=True))
        new = f"a brand new {role} secret"
        form = {
            "current_password": PASSWORD,
            "new_password": new,
            "confirm_password": new,
            "csrf_token": token,
        }
        done = client.post("/account/password", data=form)
        assert done.status_code == 302, done.get_data(as_text=True)
        assert client.get(done.headers["Location"]).status_code == 200  # this browser stays in
        assert elsewhere.get("/account/password").status_code == 302  # the other session ended
        assert auth.accounts.authenticate(user.username, new) is not None
        assert auth.accounts.authenticate(user.username, PASSWORD) is None
        [entry] = [
            e
            for e in auth.accounts.store.audit.read()
            if e["action"] == "user.password_changed" and e["subject"] == f"user:{user.id}"
        ]
        assert entry["actor"] == user.username
        auth.logout()


def test_changing_a_password_names_the_wrong_field(auth, client):
    """A wrong current password, a short new one or a mismatch is a 422 naming the field; nothing changes."""

    user = auth.login_as("agent")
    for current, new, confirm, field in (
        ("not my password", "long enough secret", "long enough secret", "current_password"),
        (PASSWORD, "short", "short", "new_password"),
        (PASSWORD, "long enough secret", "long enough secreT", "confirm_password"),
    ):
        token = csrf_from(client.get("/account/password").get_data(as_text=True))
        form = {
            "current_password": current,
            "new_password": new,
            "confirm_password": confirm,
            "csrf_token": token,
        }
        response = client.post("/account/password", data=form)
        html = response.get_data(as_text=True)
        assert response.status_code == 422 and f'id="{field}-error"' in html, field
    assert auth.accounts.authenticate(user.username, PASSWORD) is not None
    assert client.post("/account/password", data={"current_password": PASSWORD}).status_code == 400  # no CSRF


def test_the_sign_in_form_needs_its_csrf_token(auth, client):
    """Signing in is anonymous by nature, and still needs the form's CSRF token."""
    user = auth.make_user(Role.AGENT)
    refused = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    assert auth.login(user.username).status_code == 302


def test_page_forms_check_sign_in_then_role_then_csrf(auth, client, app):
    """An admin form: anonymous goes to sign-in, the wrong role gets 403, the admin without the token 400."""
    form = {"username": "formcheck", "role": "agent", "password": PASSWORD}
    assert app.test_client().post("/admin/users", data=form).status_code == 302
    auth.login_as(Role.STAKEHOLDER)
    assert client.post("/admin/users", data=form).status_code == 403
    auth.logout()
    auth.login_as(Role.ADMIN)
    assert client.post("/admin/users", data=form).status_code == 400
    assert auth.accounts.by_name("formcheck") is None
