"""Each user's preferred script language: set by themselves or an admin, stored on the user."""

from __future__ import annotations

import pytest

from crisis_console.roles import Role
from crisis_console.services.errors import ValidationError
from scripts_library import languages


def test_a_user_reads_english_until_they_choose(auth):
    """A new user's language is English; choosing Spanish is stored and audited."""
    agent = auth.make_user(Role.AGENT)
    assert agent.language == "en"
    changed = auth.accounts.set_language(agent.id, "es", actor=agent.username)
    assert changed.language == "es"
    assert auth.accounts.require(agent.id).public()["language"] == "es"


def test_a_language_must_be_a_language_code(auth):
    """Anything but a code such as "es" or "pt-BR" is refused, naming the field."""
    agent = auth.make_user(Role.AGENT)
    assert auth.accounts.set_language(agent.id, "pt-BR", actor="test").language == "pt-BR"
    for bad in ("", "Spanish!", "e", None, 7):
        with pytest.raises(ValidationError) as refused:
            auth.accounts.set_language(agent.id, bad, actor="test")
        assert refused.value.field == "language"


def test_an_agent_sets_their_own_language(auth, client):
    """PATCH /api/v1/me changes only the caller's language; bad input is a 422 naming the field."""
    agent = auth.login_as(Role.AGENT)
    headers = auth.csrf_headers()
    response = client.patch("/api/v1/me", json={"language": "es"}, headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["user"]["language"] == "es"
    assert client.get("/api/v1/me").json["user"]["language"] == "es"
    for body, field in (({"language": "no way"}, "language"), ({}, "language"), ({"role": "admin"}, "role")):
        refused = client.patch("/api/v1/me", json=body, headers=headers)
        assert refused.status_code == 422, refused.json
        assert refused.json["error"]["field"] == field
    assert auth.accounts.require(agent.id).role == Role.AGENT
    page = client.get("/agent").get_data(as_text=True)
    assert '<option value="es" lang="es" selected>Español</option>' in page


def test_an_admin_sets_an_agents_language(auth, client):
    """The admin's user update takes ``language`` too."""
    agent = auth.make_user(Role.AGENT)
    auth.login_as(Role.ADMIN)
    response = client.patch(f"/api/v1/users/{agent.id}", json={"language": "vi"}, headers=auth.csrf_headers())
    assert response.status_code == 200, response.json
    assert auth.accounts.require(agent.id).language == "vi"


def test_language_names_are_their_own():
    """Links read as the language itself ("En español"); an unknown code stays a code."""
    assert languages.link_text("es") == "En español"
    assert languages.name("xx") == "xx"
    assert languages.choices({"xx"})[-1] == ("xx", "xx")


def test_an_admin_sets_it_on_the_users_page(auth, client):
    """The users page's Save takes the language with the role and team."""
    agent = auth.make_user(Role.AGENT)
    auth.login_as(Role.ADMIN)
    page = client.get("/admin/users").get_data(as_text=True)
    assert f'<select id="language-{agent.id}" name="language">' in page
    form = {"role": "agent", "team": "", "phone": "", "email": "", "language": "es"}
    assert auth.post(f"/admin/users/{agent.id}/role", form).status_code == 302
    assert auth.accounts.require(agent.id).language == "es"
