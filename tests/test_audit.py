"""The audit trail: every change recorded, readable in order, with ``since``."""

from __future__ import annotations

from crisis_console.roles import Role
from tests.helpers import PASSWORD


def test_user_changes_are_audited_in_order(auth, client):
    """Creating, changing, disabling and resetting a user each leave one entry, oldest first."""
    admin = auth.login_as(Role.ADMIN)
    assert (
        auth.post("/admin/users", {"username": "audited", "role": "agent", "password": PASSWORD}).status_code
        == 302
    )
    target = auth.accounts.by_name("audited")
    auth.post(f"/admin/users/{target.id}/role", {"role": "agent", "team": "Nights"})
    auth.post(f"/admin/users/{target.id}/disable")
    auth.post(f"/admin/users/{target.id}/password", {"password": "another good password"})
    auth.logout()
    auth.login_as(Role.MANAGER)
    entries = client.get("/api/v1/audit").json["entries"]
    mine = [e for e in entries if e["subject"] == f"user:{target.id}"]
    assert [e["action"] for e in mine] == [
        "user.created",
        "user.updated",
        "user.disabled",
        "user.password_reset",
    ]
    assert all(e["actor"] == admin.username for e in mine)
    assert mine[1]["details"]["team"] == ["", "Nights"]
    assert all(e["at"].endswith("Z") for e in mine)


def test_since_returns_only_later_entries(auth, client):
    """``since`` takes the last id seen (exclusive) or an ISO time."""
    auth.login_as(Role.MANAGER)
    first = client.get("/api/v1/audit").json
    auth.make_user(Role.AGENT)
    later = client.get(f"/api/v1/audit?since={first['next_since']}").json["entries"]
    assert [e["action"] for e in later] == ["user.created"]
    assert client.get("/api/v1/audit?since=2000-01-01T00:00:00Z").json["entries"][0] == first["entries"][0]
    assert client.get("/api/v1/audit?since=2999-01-01T00:00:00Z").json["entries"] == []


def test_bad_since_and_limit_name_their_field(auth, client):
    """Nonsense query values are a 422 naming the parameter."""
    auth.login_as(Role.ADMIN)
    response = client.get("/api/v1/audit?since=yesterday-ish")
    assert response.status_code == 422
    assert response.json["error"]["field"] == "since"
    response = client.get("/api/v1/audit?limit=0")
    assert response.json["error"]["field"] == "limit"


def test_change_and_entry_are_written_together(auth, store):
    """A change and its audit entry commit in one transaction: both or neither."""
    before = store.audit.length()
    user = auth.make_user(Role.AGENT)
    auth.accounts.set_active(user.id, False, actor="test")
    assert store.audit.length() == before + 2
