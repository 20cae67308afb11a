"""Recent activity on the manager console: bounded, bulk runs collapsed, subjects readable."""

from __future__ import annotations

from crisis_console.roles import Role
from crisis_console.services.activity import ROWS, Recent
from crisis_console.services.categories import Categories
from crisis_console.services.events import Events
from crisis_console.services.flags import Flags
from crisis_console.services.scripts import Scripts


def test_a_bulk_run_collapses_into_one_row(store):
    """148 categories created in a row by one replay read as one row, not 148."""
    service = Categories(store)
    for n in range(148):
        service.create({"name": f"Replayed {n}"}, actor="replay")
    rows = Recent(store).rows()
    assert rows[0].what == "148 categories created"
    assert rows[0].count == 148
    assert rows[0].actor == "replay"
    assert rows[0].subject == "Category “Replayed 147”, Category “Replayed 146” and 146 more"


def test_rows_are_bounded_and_sign_ins_left_out(store, auth):
    """However long the trail, the console shows at most ROWS rows, and no sign-ins."""
    events = Events(store)
    for n in range(ROWS + 5):
        events.create({"name": f"Drill {n}", "kind": "flood", "severity": "minor"}, actor=f"m{n % 2}")
    auth.login_as(Role.MANAGER)
    rows = Recent(store).rows()
    assert len(rows) == ROWS
    assert not [row for row in rows if row.action.startswith("auth.")]


def test_subjects_name_what_they_are_and_link_to_its_page(store):
    """“script:1” reads as Script “Shelter list” v1, with the script's page to open."""
    event = Events(store).create(
        {"name": "Blizzard", "kind": "winter_storm", "severity": "severe"}, actor="dana"
    )
    script = Scripts(store).create(
        {"title": "Shelter list", "topic": "Shelter", "language": "en", "body": "Open."}, actor="lee"
    )
    rows = Recent(store).rows()
    assert rows[0].what == "created"
    assert rows[0].subject == "Script “Shelter list”"
    assert rows[0].link == ("console.script_page", {"script_id": script.id})
    Scripts(store).act(script.id, "submit", actor="lee")
    assert Recent(store).rows()[0].subject == "Script “Shelter list” v1"
    event_row = next(row for row in Recent(store).rows() if row.action == "event.created")
    assert event_row.subject == "Event “Blizzard”"
    assert event_row.link == ("console.timing", {"event_id": event.id})


def test_the_console_shows_the_bounded_readable_list(auth, client, store):
    """The page shows the collapsed row in a labelled, focusable scroll region."""
    service = Categories(store)
    for n in range(30):
        service.create({"name": f"Imported {n}"}, actor="import")
    auth.login_as(Role.MANAGER)
    page = client.get("/manager").get_data(as_text=True)
    assert "30 categories created" in page
    assert 'class="table-wrap activity-scroll" tabindex="0" role="region" aria-label="Recent activity' in page
    assert "category:imported_1" not in page


def test_an_agents_flag_reads_as_its_words(store):
    """A raised flag reads as Agents' flag “…”, not as its raw subject flag_group:1."""
    Flags(store).raise_flag({"text": "Main St shelter is full"}, user_id=7, actor="ana")
    row = Recent(store).rows()[0]
    assert row.subject == "Agents' flag “Main St shelter is full”"
    assert "flag_group" not in row.subject
