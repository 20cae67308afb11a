"""Open311 GeoReport v2: services, posting and reading requests, errors in GeoReport's format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from crisis_console.roles import Role
from crisis_console.services import trends
from crisis_console.services.accounts import OPEN311_SCOPE
from crisis_console.services.categories import Categories

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open311"
SCHEMA = "open311-schema-validation__schema__georeport-v2__{}.json"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="shared/data is not beside the checkout")


def schema(name: str) -> dict:
    """Load one of the GeoReport v2 JSON schemas shipped in shared/data."""
    return json.loads((DATA / SCHEMA.format(name)).read_text())


@pytest.fixture
def api_key(auth, store):
    """A token for an integration account, and a category with an Open311 code."""
    Categories(store).create(
        {
            "code": "street_light",
            "name": "Street Light Outages",
            "open311_code": "SLO",
            "aliases": ["light out"],
        }
    )
    user = auth.make_user(Role.AGENT)
    return auth.accounts.create_token(user.username, "city app", scope=OPEN311_SCOPE)


def test_services_validate_against_the_schema(client, api_key):
    """services.json lists categories as services that match GeoReport's schema; XML too."""
    services = client.get("/open311/v2/services.json").json
    assert [s["service_code"] for s in services] == ["SLO"]
    for item in services:
        jsonschema.validate(item, schema("service"))
    real = json.loads((DATA / "open311status__spec__fixtures__service_list.json").read_text())[0]
    assert set(real) <= set(services[0])
    root = ET.fromstring(client.get("/open311/v2/services.xml").get_data())
    assert root.tag == "services" and root.find("service/service_code").text == "SLO"
    assert client.get("/open311/v2/services/SLO.json").json == {"service_code": "SLO", "attributes": []}
    assert client.get("/open311/v2/services/NOPE.json").status_code == 404


def test_post_then_read_a_request(client, api_key, store):
    """A posted request is counted under its category and reads back in the city's shape."""
    form = {
        "api_key": api_key,
        "service_code": "SLO",
        "lat": "42.3145",
        "long": "-71.0611",
        "description": "Dark since last night",
    }
    created = client.post("/open311/v2/requests.json", data=form)
    assert created.status_code == 201, created.get_data(as_text=True)
    request_id = created.json[0]["service_request_id"]
    found = client.get(f"/open311/v2/requests/{request_id}.json").json
    assert len(found) == 1
    jsonschema.validate(found[0], schema("request"))
    real = json.loads((DATA / "open311status__test__mocks__bloomington_requests.json").read_text())[0]
    assert set(real) <= set(found[0])
    assert (found[0]["service_code"], found[0]["description"], found[0]["lat"]) == (
        "SLO",
        "Dark since last night",
        42.3145,
    )
    listed = client.get("/open311/v2/requests.json?service_code=SLO").json
    assert [r["service_request_id"] for r in listed] == [request_id]
    assert trends.series(store, window="10m", bucket="1m")["totals"]["street_light"] == 1
    xml = ET.fromstring(client.get(f"/open311/v2/requests/{request_id}.xml").get_data())
    assert xml.tag == "service_requests" and xml.find("request/service_code").text == "SLO"


@pytest.mark.parametrize(
    ("form", "status", "words"),
    [
        ({"service_code": "SLO", "lat": "42.3", "long": "-71.0"}, 403, "api_key"),
        ({"api_key": "cc_wrong", "service_code": "SLO", "lat": "42.3", "long": "-71.0"}, 403, "api_key"),
        ({"lat": "42.3", "long": "-71.0"}, 400, "service_code"),
        ({"service_code": "SLO"}, 400, "location"),
        ({"service_code": "VOLCANO", "lat": "42.3", "long": "-71.0"}, 400, "category"),
        ({"service_code": "SLO", "lat": "420", "long": "-71.0"}, 400, "lat"),
    ],
)
def test_errors_are_in_georeport_format(client, api_key, form, status, words):
    """Bad requests answer [{code, description}] with the matching status, in JSON and XML."""
    if "api_key" in form and form["api_key"] != "cc_wrong":
        form = dict(form)
    elif status != 403:
        form = {**form, "api_key": api_key}
    response = client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == status
    assert response.json[0]["code"] == status and words in response.json[0]["description"]
    xml = client.post("/open311/v2/requests.xml", data=form)
    root = ET.fromstring(xml.get_data())
    assert root.tag == "errors" and root.find("error/code").text == str(status)


def test_unknown_request_and_format(client, api_key):
    """A missing request is a GeoReport 404; an unknown format says which ones exist."""
    assert client.get("/open311/v2/requests/1-0.json").status_code == 404
    assert client.get("/open311/v2/requests/not-an-id.json").status_code == 404
    assert client.get("/open311/v2/services.csv").json[0]["code"] == 404


def test_only_a_key_made_for_open311_is_an_api_key(client, auth, api_key):
    """An ordinary API token is refused as api_key, saying so; an Open311 key is no bearer token."""
    agent = auth.make_user(Role.AGENT)
    api_token = auth.accounts.create_token(agent.username, "integration")
    form = {"api_key": api_token, "service_code": "SLO", "lat": "42.3", "long": "-71.0"}
    refused = client.post("/open311/v2/requests.json", data=form)
    assert refused.status_code == 403 and refused.json[0]["code"] == 403
    assert "api_key is an API token, not an Open311 key" in refused.json[0]["description"]
    assert "--open311" in refused.json[0]["description"]
    assert client.post("/open311/v2/requests.json", data={**form, "api_key": api_key}).status_code == 201
    as_bearer = {"Authorization": f"Bearer {api_key}"}
    assert client.get("/api/v1/me", headers=as_bearer).status_code == 401
    assert client.post("/api/v1/complaints", json={"category": "SLO"}, headers=as_bearer).status_code == 401


def test_the_command_line_and_the_admin_page_make_open311_keys(runner, client, auth, api_key):
    """``token create NAME --open311`` and the Users page's Open311 box make working api_keys."""
    from crisis_console.cli import cli

    user = auth.make_user(Role.AGENT)
    result = runner.invoke(cli, ["token", "create", user.username, "--open311", "--label", "city app"])
    assert result.exit_code == 0, result.output
    form = {"api_key": result.output.strip(), "service_code": "SLO", "lat": "42.3", "long": "-71.0"}
    assert client.post("/open311/v2/requests.json", data=form).status_code == 201
    auth.login_as(Role.ADMIN)
    page = auth.post(f"/admin/users/{user.id}/tokens", {"name": "vendor", "scope": "open311"})
    key = page.get_data(as_text=True).split('<code id="new-token">')[1].split("</code>")[0]
    assert client.post("/open311/v2/requests.json", data={**form, "api_key": key}).status_code == 201
    assert {t["name"]: t["scope"] for t in auth.accounts.tokens(user.id)} == {
        "city app": "open311",
        "vendor": "open311",
    }
