"""Test helpers: signing in through the real pages, and users made for one test."""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from crisis_console.extensions import STORE_EXTENSION
from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts, User
from crisis_console.store import Store

PASSWORD = "correct horse battery"
_names = itertools.count(1)


def unique_name(role: str) -> str:
    """Return a username no other test uses."""
    return f"{role}{next(_names)}"


def csrf_from(html: str) -> str:
    """Return the CSRF token printed in a page's ``<meta name="csrf-token">``."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Create users and sign in and out through the real routes."""

    def __init__(self, app: Flask, client: FlaskClient):
        self._app = app
        self._client = client

    @property
    def accounts(self) -> Accounts:
        """The account service over the test app's store."""
        return Accounts(self._app.extensions[STORE_EXTENSION])

    def make_user(
        self, role: str, *, username: str | None = None, team: str = "", password: str = PASSWORD
    ) -> User:
        """Create a user directly through the service."""
        return self.accounts.create_user(
            username or unique_name(role), role, password, team=team, actor="test"
        )

    def login(self, username: str, password: str = PASSWORD) -> Any:
        """Sign in through the form (with its CSRF token), not following the redirect."""
        page = self._client.get("/login")
        return self._client.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "csrf_token": csrf_from(page.get_data(as_text=True)),
            },
        )

    def login_as(self, role: str, **kwargs: Any) -> User:
        """Create a user of ``role`` and sign in as them."""
        user = self.make_user(role, **kwargs)
        response = self.login(user.username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    def csrf(self) -> str:
        """Return the CSRF token of the current session."""
        return csrf_from(self._client.get("/", follow_redirects=True).get_data(as_text=True))

    def csrf_headers(self) -> dict[str, str]:
        """Return the header a cookie-authenticated API write carries (as the pages' JavaScript)."""
        return {"X-CSRFToken": self.csrf()}

    def post(self, url: str, data: dict[str, Any] | None = None) -> Any:
        """Post a form with the session's CSRF token, as the pages do."""
        return self._client.post(url, data={**(data or {}), "csrf_token": self.csrf()})

    def logout(self) -> Any:
        """Sign out through the header's form."""
        return self.post("/logout")


class TwilioSigner:
    """Post to webhooks with the X-Twilio-Signature the SDK's RequestValidator computes."""

    def __init__(self, client: FlaskClient, token: str, base_url: str = "http://localhost"):
        self._client = client
        self._validator = RequestValidator(token)
        self.base_url = base_url

    def signature(self, path: str, params: dict[str, str], url: str | None = None) -> str:
        """Return the signature Twilio would send for these parameters."""
        return self._validator.compute_signature(url or self.base_url + path, params)

    def post(self, path: str, params: dict[str, str], *, signature: str | None = None) -> Any:
        """POST form parameters, signed (or with the given signature)."""
        sig = self.signature(path, params) if signature is None else signature
        headers = {"X-Twilio-Signature": sig} if sig else {}
        return self._client.post(path, data=params, headers=headers)


def live_announcement(store: Store, number: str, messages: dict[str, str], route: dict[str, str]) -> int:
    """Create a line (English and Spanish) and put an approved announcement live on it.

    Goes through the services as the API would (writer, then a different reviewer);
    returns the announcement's id.
    """
    from crisis_console.services.announcements import Announcements
    from crisis_console.services.lines import Lines

    line = Lines(store).create(
        {"number": number, "name": "311", "route": route, "languages": ["en", "es"]}, actor="admin"
    )
    service = Announcements(store)
    announcement = service.create({"line_id": line.id, "messages": messages}, actor="writer")
    for action, actor in (("submit", "writer"), ("approve", "reviewer"), ("activate", "writer")):
        service.act(announcement.id, action, actor=actor)
    return announcement.id


class ApiDesk:
    """Staff calling the in-process app's JSON API with bearer tokens, by the names given.

    ``staff`` pairs a role with the name tests use for that person (``"writer"``, ``"reviewer"``).
    """

    STAFF: tuple[tuple[str, str], ...] = (
        (Role.ADMIN, "admin"),
        (Role.MANAGER, "writer"),
        (Role.MANAGER, "reviewer"),
    )

    def __init__(
        self, auth: AuthActions, client: FlaskClient, staff: tuple[tuple[str, str], ...] | None = None
    ):
        self.client = client
        self.headers: dict[str, dict[str, str]] = {}
        for role, name in staff or self.STAFF:
            user = auth.make_user(role)
            self.headers[name] = {"Authorization": f"Bearer {auth.accounts.create_token(user.username)}"}

    def post(self, who: str, path: str, body: dict | None = None) -> Any:
        """POST JSON as one of the desk's users."""
        return self.client.post(f"/api/v1{path}", json=body or {}, headers=self.headers[who])

    def patch(self, who: str, path: str, body: dict | None = None) -> Any:
        """PATCH JSON as one of the desk's users."""
        return self.client.patch(f"/api/v1{path}", json=body or {}, headers=self.headers[who])

    def get(self, who: str, path: str) -> Any:
        """GET as one of the desk's users."""
        return self.client.get(f"/api/v1{path}", headers=self.headers[who])


class Heard(list):
    """The records one signal carried for one store, in order (``heard.whats`` the changes)."""

    def __init__(self, store: Store, signal: Any, name: str):
        super().__init__()
        self.whats: list[str] = []
        self._name = name
        signal.connect(self._receive, sender=store)  # held weakly: keep this object alive

    def _receive(self, store: Store, *, what: str, **record: Any) -> None:
        self.whats.append(what)
        self.append(record[self._name])


def quiet(store: Store) -> Store:
    """Return the same data through a store nobody subscribes to: for setting a scene
    without its side effects (the declaration's own alerts, say)."""
    return Store(store.redis, store.keys.prefix)


def wait_until_served(base_url: str, render: dict[str, Any], timeout: float = 30.0) -> None:
    """Wait until the served console answers ``/public`` with ``render`` (the status that
    ``render_public_pages`` returned): each process re-reads the stored render on its own
    schedule, so a test waits on the ETag it serves, not on a sleep."""
    deadline = time.monotonic() + timeout
    while True:
        served = requests.get(f"{base_url}/public", timeout=10).headers.get("ETag")
        if served == render["etag"]:
            return
        assert time.monotonic() < deadline, f"the console still serves {served}, not {render['etag']}"
        time.sleep(0.05)
