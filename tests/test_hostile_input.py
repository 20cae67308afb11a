"""Hostile input on every write route answers a clear 4xx, never a 5xx, and stores nothing bad.

Every JSON write route (each operation of the OpenAPI document with a JSON body, so a new
route is covered as soon as it is documented) gets malformed JSON, the wrong content type,
a 10 MB body, 10,000-deep nesting, bytes that are not UTF-8, NUL characters, lone
surrogates and 100 kB strings. Open311 answers in GeoReport's own error format and its XML
stays well-formed; the CAP inbox refuses junk with 4xx.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from crisis_console.api.openapi import DOCUMENT
from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.roles import Role
from crisis_console.services.accounts import OPEN311_SCOPE, Accounts
from crisis_console.services.categories import Categories
from crisis_console.services.intake import Intake
from tests.helpers import PASSWORD, unique_name

TEN_MB = 10 * 1024 * 1024
DEEP = 10_000


def json_write_routes() -> list[tuple[str, str]]:
    """Return (method, path template) of every documented operation that takes a JSON body."""
    return [
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in ("post", "put", "patch", "delete")
        and "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


ROUTES = json_write_routes()


def body_schema(method: str, path: str) -> dict[str, Any]:
    """Return the route's request body schema (the first alternative of a oneOf)."""
    schema = DOCUMENT["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
    return schema.get("oneOf", [schema])[0]


def a_text_field(method: str, path: str) -> str:
    """Return a string property of the route's body: a required one when there is one."""
    schema = body_schema(method, path)
    properties = schema.get("properties", {})
    texts = [name for name, prop in properties.items() if prop.get("type") == "string"]
    required = [name for name in schema.get("required", []) if name in texts]
    return (required or texts or ["text"])[0]


class Scene:
    """A console with one of each thing a route's path can name, and a token per role."""

    def __init__(self, app: Flask):
        self.app = app
        self.client = app.test_client()
        store = app.extensions[STORE_EXTENSION]
        self.accounts = Accounts(store)
        self.tokens: dict[str, str] = {}
        self.usernames: dict[str, str] = {}
        for role in (Role.MANAGER, Role.ADMIN, Role.AGENT):
            user = self.accounts.create_user(unique_name(role), role, PASSWORD, actor="test")
            self.usernames[role] = user.username
            self.tokens[role] = self.accounts.create_token(user.username, "hostile", actor="test")
        Categories(store).create({"code": "pothole", "name": "Pothole", "open311_code": "PH"})
        self.ids = {
            "event_id": self.make(
                "POST", "/events", {"name": "Storm", "kind": "flood", "severity": "severe"}
            ),
            "script_id": self.make("POST", "/scripts", {"title": "T", "topic": "t", "body": "B"}),
            "line_id": self.make(
                "POST",
                "/lines",
                {
                    "number": "+16175550111",
                    "name": "Main",
                    "route": {"type": "dial", "number": "+16175550100"},
                },
                role=Role.ADMIN,
            ),
            "user_id": self.accounts.create_user(unique_name("agent"), Role.AGENT, PASSWORD, actor="test").id,
            "code": "pothole",
            "group_id": self.make(
                "POST", "/flags", {"text": "sinkholes on Main"}, role=Role.AGENT, key="group"
            ),
        }
        self.open311_key = self.accounts.create_token(
            self.usernames[Role.AGENT], "city app", actor="test", scope=OPEN311_SCOPE
        )

    def make(
        self, method: str, path: str, body: dict[str, Any], role: str = Role.MANAGER, key: str | None = None
    ) -> Any:
        """Create a thing through the API and return its id."""
        response = self.send(method, path, role, json=body)
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        found = response.json[key] if key else response.json
        for name in ("event", "script", "line"):
            found = found.get(name, found) if isinstance(found, dict) else found
        return found["id"]

    def send(self, method: str, path: str, role: str, **kwargs: Any) -> Any:
        """Send a request to ``/api/v1{path}`` with ``role``'s token."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def path(self, template: str) -> str:
        """Fill a path template with the ids of real things."""
        for name, value in self.ids.items():
            template = template.replace(f"{{{name}}}", str(value))
        return template

    def role_for(self, method: str, path: str) -> str:
        """Return a role the route lets through (the body is read only after the role check)."""
        for role in (Role.MANAGER, Role.ADMIN, Role.AGENT):
            if self.send(method, path, role, data=b"not json").status_code not in (401, 403):
                return role
        raise AssertionError(f"no role may use {method} {path}")


@pytest.fixture(scope="module")
def scene(redis_url: str, run_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """One console for the file, on the test Redis under its own key prefix."""
    folder: Path = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRISIS_INSTANCE_PATH", str(folder / "instance"))
        app = create_app(TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=f"{run_prefix}:hostile"))
        yield Scene(app)


def assert_clear_error(
    response: Any,
    status: int | tuple[int, ...],
    field: str | None = None,
    route: tuple[str, str] | None = None,
) -> dict:
    """Assert a 4xx JSON error body in API.md's shape (naming ``field`` when given), and that the
    route's operation in the OpenAPI document lists that status."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True)[:300])
    if route is not None:
        method, path = route
        assert str(response.status_code) in DOCUMENT["paths"][path][method.lower()]["responses"]
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] and error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> bytes:
    """Return a JSON object nested ``depth`` levels deep."""
    return b'{"a":' * depth + b"1" + b"}" * depth


#: Bodies no JSON route can read: (name, body, content type, status).
UNREADABLE = [
    ("malformed", b'{"name": "x",', "application/json", 400),
    ("text_plain", b'{"name": "x"}', "text/plain", 415),
    ("form", b"name=x", "application/x-www-form-urlencoded", 415),
    ("ten_mb", b'{"name": "' + b"a" * TEN_MB + b'"}', "application/json", 413),
    ("deep_arrays", b"[" * DEEP + b"]" * DEEP, "application/json", 400),
    ("deep_objects", nested(DEEP), "application/json", 400),
    ("not_utf8", b'{"name": "caf\xe9 \xff\xfe"}', "application/json", 400),
    ("nul_outside_strings", b'{"name": \x00"x"}', "application/json", 400),
    ("not_an_object", b'["name"]', "application/json", 400),
]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@pytest.mark.parametrize(
    ("case", "body", "content_type", "status"), UNREADABLE, ids=[row[0] for row in UNREADABLE]
)
def test_unreadable_bodies_are_refused(scene, method, path, case, body, content_type, status):
    """Each JSON write route answers an unreadable body with a clear 4xx naming the body."""
    role = scene.role_for(method, scene.path(path))
    response = scene.send(method, scene.path(path), role, data=body, headers={"Content-Type": content_type})
    error = assert_clear_error(response, status, route=(method, path))
    if status != 413:
        assert error.get("field") == "body", error


#: Strings that no field can hold, as JSON text: (name, JSON string literal).
BAD_STRINGS = [
    ("nul", '"before\\u0000after"'),
    ("control", '"bell\\u0007"'),
    ("lone_surrogate", '"\\ud800"'),
    ("hundred_kb", json.dumps("a" * 100_000)),
]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@pytest.mark.parametrize(("case", "literal"), BAD_STRINGS, ids=[row[0] for row in BAD_STRINGS])
def test_strings_no_field_can_hold_are_refused_naming_the_field(scene, method, path, case, literal):
    """A NUL or control character, a lone surrogate or 100 kB in a text field is a 422 naming it."""
    field = a_text_field(method, path)
    role = scene.role_for(method, scene.path(path))
    body = f'{{"{field}": {literal}}}'.encode()
    response = scene.send(method, scene.path(path), role, data=body, headers=JSON)
    assert_clear_error(response, 422, field, route=(method, path))


def test_a_bad_string_deep_in_a_batch_names_its_top_level_field(scene):
    """A lone surrogate inside a batch of complaints is refused whole, naming ``complaints``."""
    body = b'{"complaints": [{"category": "pothole"}, {"category": "pothole", "text": "\\ud800"}]}'
    response = scene.send("POST", "/complaints", Role.MANAGER, data=body, headers=JSON)
    assert_clear_error(response, 422, "complaints")


@pytest.mark.parametrize("username", ["\ud800", "a\x00b", "x" * 100_000])
def test_sign_in_with_an_unstorable_username_is_a_422(scene, username):
    """The sign-in's throttle keys by username in Redis: a name it cannot store is still a 422."""
    body = json.dumps({"username": username, "password": "whatever"}).encode()
    response = scene.client.post("/api/v1/session", data=body, headers=JSON)
    assert_clear_error(response, 422, "username")


def test_sign_in_nested_ten_thousand_deep_is_a_400(scene):
    """The throttle reads the sign-in body too: 10,000-deep nesting is a 400, not a crash."""
    response = scene.client.post("/api/v1/session", data=nested(DEEP), headers=JSON)
    assert_clear_error(response, 400, "body")


TREND_ROUTES = ["/trends", "/trends/spikes", "/trends/movers", "/trends.csv", "/complaints.csv"]


@pytest.mark.parametrize("route", TREND_ROUTES)
@pytest.mark.parametrize(
    "at",
    ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "0713-06-19T06:02:15Z"],
)
def test_an_at_past_the_calendar_names_at(scene, route, at):
    """Times at the calendar's ends cannot be windowed: 422 naming ``at``, not an overflow."""
    response = scene.send("GET", route, Role.MANAGER, query_string={"at": at})
    assert_clear_error(response, 422, "at")


def test_audit_since_before_1970_starts_at_the_first_entry(scene):
    """An audit ``since`` before the first possible entry id reads from the start."""
    response = scene.send("GET", "/audit", Role.ADMIN, query_string={"since": "0001-01-01T00:00:00Z"})
    assert response.status_code == 200 and response.json["entries"]


def test_changing_a_line_with_nothing_is_a_422(scene):
    """``PATCH /lines/{id}`` with ``{}`` says what it needs (it used to look like an outage)."""
    response = scene.send("PATCH", scene.path("/lines/{line_id}"), Role.ADMIN, json={})
    assert_clear_error(response, 422, "body")


# --- Open311 --------------------------------------------------------------------------------


def open311_post(scene: Scene, fmt: str = "json", **fields: str) -> Any:
    """Post a GeoReport service request with the scene's key."""
    form = {"api_key": scene.open311_key, "service_code": "PH", "lat": "42.36", "long": "-71.06", **fields}
    return scene.client.post(f"/open311/v2/requests.{fmt}", data=form)


def assert_georeport_error(response: Any, fmt: str = "json") -> str:
    """Assert a 4xx in GeoReport's error format and return its description."""
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    if fmt == "json":
        [error] = response.json
        assert error["code"] == response.status_code
        return error["description"]
    root = ET.fromstring(response.get_data())
    assert root.tag == "errors"
    assert root.find("error/code").text == str(response.status_code)
    return root.find("error/description").text


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "broken\x00light"),
        ("description", "x" * 100_000),
        ("address_string", "1 Main St\x00"),
        ("address_string", "y" * 5000),
        ("service_code", "PH\x00"),
        ("lat", "42.36\x00"),
    ],
    ids=["nul_description", "long_description", "nul_address", "long_address", "nul_code", "nul_lat"],
)
def test_open311_refuses_unstorable_fields_in_its_own_format(scene, fmt, field, value):
    """NUL bytes and over-long text in a GeoReport post are a 400 naming the field, not a truncation."""
    response = open311_post(scene, fmt, **{field: value})
    description = assert_georeport_error(response, fmt)
    assert field in description


def test_open311_refuses_a_ten_megabyte_post_in_its_own_format(scene):
    """A body over the limit is a 413 in GeoReport's format."""
    response = scene.client.post(
        "/open311/v2/requests.json",
        data=b"api_key=x&description=" + b"a" * TEN_MB,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert_georeport_error(response)


def test_open311_refuses_invalid_utf8_readably(scene):
    """Bytes that are not UTF-8 are read as replacement characters, never a 5xx."""
    response = scene.client.post(
        "/open311/v2/requests.json",
        data=b"api_key=" + scene.open311_key.encode() + b"&service_code=PH&lat=1&long=1&description=%FF%FE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201


def test_open311_xml_stays_well_formed_with_control_characters_stored(scene):
    """A complaint whose text holds XML-forbidden control characters still reads back as XML."""
    store = scene.app.extensions[STORE_EXTENSION]
    # The JSON API refuses such text, but other intake paths (CSV replay, SMS) may carry it.
    result = Intake(store).submit(
        [{"category": "pothole", "text": "bell\x07 and \x1b[0m"}], channel="import", source="test"
    )
    assert result["accepted"] == 1
    listed = scene.client.get("/open311/v2/requests.xml")
    assert listed.status_code == 200
    root = ET.fromstring(listed.get_data())  # raises if not well-formed
    assert any("bell" in (node.text or "") for node in root.iter("description"))


# --- the CAP inbox --------------------------------------------------------------------------


CAP_JUNK = [
    ("empty", b"", "application/cap+xml", 400),
    ("not_xml", b"hello", "application/cap+xml", 400),
    ("json", b'{"alert": 1}', "application/json", 400),
    ("not_utf8", b"<alert>\xff\xfe</alert>", "application/cap+xml", 400),
    ("nul", b"<alert>\x00</alert>", "application/cap+xml", 400),
    ("deep", b"<a>" * DEEP + b"</a>" * DEEP, "application/cap+xml", 400),
    ("ten_mb", b"<alert>" + b"a" * TEN_MB + b"</alert>", "application/cap+xml", 413),
    ("wrong_root", b"<feed xmlns='http://www.w3.org/2005/Atom'/>", "application/cap+xml", 422),
    ("long_text", b"<alert>" + b"x" * 100_000 + b"</alert>", "application/cap+xml", 422),
]


@pytest.mark.parametrize(("case", "body", "content_type", "status"), CAP_JUNK, ids=[r[0] for r in CAP_JUNK])
def test_the_cap_inbox_refuses_junk_with_a_4xx(scene, case, body, content_type, status):
    """The CAP inbox answers junk with a clear 4xx JSON error, never a 5xx."""
    response = scene.client.post(
        "/cap/v1/inbox",
        data=body,
        headers={"Authorization": f"Bearer {scene.tokens[Role.MANAGER]}", "Content-Type": content_type},
    )
    assert_clear_error(response, status)


# --- through the real server ----------------------------------------------------------------


@pytest.mark.served
@pytest.mark.parametrize(
    ("body", "status"),
    [(b'{"name": "' + b"a" * TEN_MB + b'"}', 413), (nested(DEEP), 400), (b'{"name": "\\ud800"}', 422)],
    ids=["ten_mb", "deep", "lone_surrogate"],
)
def test_the_real_server_answers_hostile_bodies_with_json_4xx(served_app, body, status):
    """Through gevent's server too (not only the test client), the answer is the JSON 4xx."""
    token = served_app.token_for(served_app.make_user(Role.MANAGER))
    response = requests.post(
        f"{served_app.url}/api/v1/events",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == status, response.text[:300]
    assert response.json()["error"]["code"]


def test_a_bad_name_of_a_top_level_field_is_blamed_on_the_body(scene):
    """A key no field can have (here 100 kB long) is named ``body``, not echoed back."""
    body = json.dumps({"x" * 100_000: "value"}).encode()
    response = scene.send("POST", "/events", Role.MANAGER, data=body, headers=JSON)
    assert_clear_error(response, 422, "body")
