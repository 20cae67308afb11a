"""CSV exports never hand a spreadsheet a formula: hostile text is written as text."""

from __future__ import annotations

import csv
import io
import itertools

import pytest

from crisis_console.csv_safety import FORMULA_STARTS, safe_cell, to_csv
from crisis_console.roles import Role
from crisis_console.services.categories import Categories

#: What a member of the public (or a careless paste) can put in a complaint's text.
HOSTILE = [
    '=HYPERLINK("http://evil","x")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]
SIDS = (f"SM{n:032x}" for n in itertools.count(1))


def read(text: str) -> list[dict[str, str]]:
    """Read a CSV answer back with the csv module."""
    return list(csv.DictReader(io.StringIO(text)))


def risky(value: str) -> bool:
    """Return whether a spreadsheet would run this cell as a formula."""
    return value.startswith(FORMULA_STARTS)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(value):
    """Each of OWASP's formula starts is prefixed with a single quote, the rest kept as it was."""
    assert safe_cell(value) == "'" + value


def test_numbers_stay_numbers_and_plain_text_is_untouched():
    """ints and floats, and plain numbers in numeric columns, pass unchanged; so does ordinary text."""
    assert safe_cell(-3) == -3 and safe_cell(-71.0589) == -71.0589
    assert safe_cell("-71.0589", numeric=True) == "-71.0589"
    assert safe_cell("-2+3", numeric=True) == "'-2+3"  # not a number: neutralised even there
    assert safe_cell("Dead end, not plowed") == "Dead end, not plowed"
    assert safe_cell(None) == ""
    rows = read(to_csv([["text", "lon"], ["=1+1", "-71.06"], ["ok", "=1"]], numeric=("lon",)))
    assert rows == [{"text": "'=1+1", "lon": "-71.06"}, {"text": "ok", "lon": "'=1"}]


@pytest.fixture
def plow(store):
    """A category the texts, the API and Open311 can name."""
    Categories(store).create(
        {"code": "snow_plowing", "name": "Snow plowing", "aliases": ["plow"], "open311_code": "PLOW"}
    )


def test_records_export_neutralises_what_agents_and_texters_wrote(client, auth, twilio, plow):
    """Hostile text logged by an agent or sent by SMS comes back quoted; a negative longitude does not."""
    agent = auth.make_user(Role.AGENT)
    agent_headers = {"Authorization": f"Bearer {auth.accounts.create_token(agent.username)}"}
    logged = client.post(
        "/api/v1/complaints",
        json={
            "complaints": [
                {"category": "plow", "text": value, "lat": 42.3601, "lon": -71.0589} for value in HOSTILE
            ]
        },
        headers=agent_headers,
    )
    assert logged.status_code == 201 and logged.json["accepted"] == len(HOSTILE)
    for value in HOSTILE[:4]:
        body = {
            "From": "+16175550188",
            "To": "+16175550311",
            "Body": f"PLOW {value}",
            "MessageSid": next(SIDS),
        }
        assert twilio.post("/twilio/sms", body).status_code == 200
    manager = auth.make_user(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    records = read(client.get("/api/v1/complaints.csv", headers=headers).get_data(as_text=True))
    texts = [r["text"] for r in records]
    for value in HOSTILE:  # intake trims the text; what is left must still be quoted
        assert "'" + value.strip() in texts, value
    assert all(not risky(cell) for r in records for name, cell in r.items() if name not in ("lat", "lon"))
    assert {r["lon"] for r in records if r["channel"] != "sms"} == {"-71.058900"}  # as stored, not quoted
    counts = read(
        client.get("/api/v1/trends.csv?window=1h&bucket=1h", headers=headers).get_data(as_text=True)
    )
    assert [(r["category"], r["count"]) for r in counts] == [("snow_plowing", str(len(HOSTILE) + 4))]


def test_records_export_neutralises_open311_descriptions_and_addresses(client, auth, plow):
    """A service request's description and address_string reach the export as text, not formulas."""
    city_app = auth.make_user(Role.AGENT)
    key = auth.accounts.create_token(city_app.username, "city app", scope="open311")
    for value in HOSTILE[:4]:
        form = {"api_key": key, "service_code": "PLOW", "description": value, "address_string": value}
        assert client.post("/open311/v2/requests.json", data=form).status_code == 201
    manager = auth.make_user(Role.MANAGER)
    headers = {"Authorization": f"Bearer {auth.accounts.create_token(manager.username)}"}
    records = read(client.get("/api/v1/complaints.csv", headers=headers).get_data(as_text=True))
    assert sorted(r["text"] for r in records) == sorted(f"'{v}\nAddress: {v}" for v in HOSTILE[:4])
    assert all(not risky(cell) for r in records for cell in r.values())
