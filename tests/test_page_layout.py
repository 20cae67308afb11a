"""Page layout in a real browser: the dashboard's spikes on top, the manager console on a tablet,
and the dashboard printed as a situation report. Geometry from bounding boxes, not pictures."""

from __future__ import annotations

import pytest

from crisis_console.roles import Role
from tests.chromium import BROWSER_MARKS, sign_in

pytestmark = BROWSER_MARKS

LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def open_as(browser, served_app, role: str, path: str, viewport: dict[str, int]):
    """Sign a new user of ``role`` in and open ``path`` live; return the page."""
    from playwright.sync_api import expect

    page = browser.new_context(viewport=viewport).new_page()
    sign_in(page, served_app.url, served_app.make_user(role).username)
    page.goto(f"{served_app.url}{path}")
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    return page


@pytest.mark.parametrize("viewport", [LAPTOP, TABLET], ids=["1366x768", "820x1180"])
def test_the_dashboard_shows_spikes_first_above_the_fold(served_app, browser, viewport):
    """Spikes come before the chart, totals and movers, and their heading is in the first screen."""
    page = open_as(browser, served_app, Role.STAKEHOLDER, "/dashboard", viewport)
    spikes = page.locator(".spikes-card").bounding_box()
    heading = page.locator("#spikes-title").bounding_box()
    assert heading["y"] + heading["height"] <= viewport["height"] / 2
    for other in ("#chart-title", "#counts-title", "#movers-title", "#notices-title"):
        assert spikes["y"] < page.locator(other).bounding_box()["y"], other
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.context.close()


def test_the_manager_console_fits_a_tablet(served_app, browser):
    """At 820 px, after an import of categories with long names, nothing widens the page."""
    from crisis_console.services.categories import Categories

    n = served_app.make_user(Role.STAKEHOLDER).id
    service = Categories(served_app.store)
    for k in range(3):
        service.create(
            {
                "code": f"residential_side_street_plowing_and_sanding_{n}_{k}",
                "name": f"Request for plowing and sanding of residential side streets {n} {k}",
            },
            actor=f"import{n}",
        )
    page = open_as(browser, served_app, Role.MANAGER, "/manager", TABLET)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    region = page.get_by_role("region", name="Recent activity, newest first")
    assert region.get_attribute("tabindex") == "0"
    assert region.bounding_box()["height"] <= 26 * 18 + 4
    page.context.close()


def test_the_recent_activity_is_bounded_and_readable(served_app, browser):
    """A bulk import is one row, the list is a fixed number of rows, subjects are names with links."""
    from playwright.sync_api import expect

    from crisis_console.services.activity import ROWS
    from crisis_console.services.categories import Categories
    from tests.test_browser import approved_script_via_api

    n = served_app.make_user(Role.STAKEHOLDER).id
    title = f"Shelter list {n}"
    script_id = approved_script_via_api(served_app, title)
    service = Categories(served_app.store)
    for k in range(40):
        service.create({"name": f"Bulk {n} {k}"}, actor=f"replay{n}")
    page = open_as(browser, served_app, Role.MANAGER, "/manager", LAPTOP)
    rows = page.locator("#activity tbody tr")
    assert rows.count() <= ROWS
    expect(rows.filter(has_text="40 categories created")).to_have_count(1)
    approved = page.locator("#activity tbody tr", has_text=f"Script “{title}” v1").first
    expect(approved.get_by_role("link")).to_have_attribute("href", f"/manager/scripts/{script_id}")
    expect(page.locator("#activity")).not_to_contain_text(f"script:{script_id}")
    page.context.close()


def test_the_printed_situation_report(served_app, browser):
    """Printed, the dashboard has a header with the event and the time, its chart inside its card,
    no window selector or "updates arrive live", and cards that are not cut in two."""
    import requests
    from playwright.sync_api import expect

    manager = served_app.make_user(Role.MANAGER)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {served_app.token_for(manager)}"
    base = f"{served_app.url}/api/v1"
    name = f"Ice storm {manager.id}"
    event = http.post(
        f"{base}/events", json={"name": name, "kind": "winter_storm", "severity": "severe"}
    ).json()
    http.post(f"{base}/events/{event['id']}/declare").raise_for_status()
    try:
        page = open_as(browser, served_app, Role.STAKEHOLDER, "/dashboard", LAPTOP)
        expect(page.locator("#chart canvas")).to_have_count(1, timeout=10_000)
        page.emulate_media(media="print")
        header = page.locator(".sitrep-head")
        expect(header).to_be_visible()
        expect(header).to_contain_text(f"Situation report: {name}")
        expect(header).to_contain_text("As of")
        for hidden in ("#chart-window", "label[for=chart-window]", ".dashboard-tools"):
            expect(page.locator(hidden)).to_be_hidden()
        expect(page.get_by_text("Updates arrive live")).to_be_hidden()
        card = page.locator(".chart-card").bounding_box()
        for part in ("#chart canvas", "#chart .uplot"):
            box = page.locator(part).first.bounding_box()
            assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"], part
        assert page.locator(".spikes-card").evaluate("el => getComputedStyle(el).breakInside") == "avoid"
        assert page.locator(".spikes-card").bounding_box()["y"] < card["y"]
        assert page.pdf(format="Letter").startswith(b"%PDF")
        page.context.close()
    finally:
        http.post(f"{base}/events/{event['id']}/stand-down").raise_for_status()
