"""In a real browser: the first morning's buttons (acknowledge an alert, revoke a share link)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from crisis_console import clock
from crisis_console.alert_hooks import AlertHooks, load_rules
from crisis_console.roles import Role
from crisis_console.services.events import Events
from tests.chromium import BROWSER_MARKS, sign_in
from tests.helpers import PASSWORD

pytestmark = BROWSER_MARKS
SHOTS = os.environ.get("CRISIS_SCREENSHOTS", "")


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def shot(target, name: str) -> None:
    """Keep a screenshot of a page or an element when CRISIS_SCREENSHOTS names a folder."""
    if SHOTS:
        target.screenshot(path=os.path.join(SHOTS, f"{name}.png"))


def test_acknowledging_an_alert_on_the_alerts_page_stops_its_escalation(served_app, page):
    """The Acknowledge button calls the API: the row names who acknowledged, escalation stops."""
    from playwright.sync_api import expect

    hooks = AlertHooks(served_app.store, load_rules(None))
    events = Events(served_app.store)
    event = events.create({"name": "Ack drill", "kind": "power_outage", "severity": "severe"}, actor="t")
    events.declare(event.id, actor="t")
    try:
        hooks.spike(
            {"category": "ack_drill", "observed": 60, "expected": 2.0, "score": 30.0, "since": clock.iso()}
        )
        [alert] = [
            a
            for a in hooks.alerting.recent(50)
            if a["rule_id"] == "spike-to-eoc" and "ack_drill" in a["message"]
        ]
        manager = served_app.make_user(Role.MANAGER)
        sign_in(page, served_app.url, manager.username)
        page.goto(f"{served_app.url}/manager/alerts")
        row = page.locator(f'tr[data-alert-id="{alert["id"]}"]')
        row.get_by_role("button", name="Acknowledge").click()
        expect(row).to_contain_text(manager.username, timeout=10_000)
        expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
        shot(page, "alerts-acknowledged")
        assert hooks.alerting.get(alert["id"])["acknowledged_by"] == manager.username
        later = clock.now() + timedelta(minutes=60)
        assert [a for a in hooks.tick(later) if a["id"] == alert["id"]] == []
    finally:
        events.stand_down(event.id, actor="t")


def test_manager_revokes_a_share_link_and_its_open_dashboard_stops(served_app, browser):
    """Create a labelled link on the console, see it listed, revoke it: the viewer is out."""
    from playwright.sync_api import expect

    label = f"Mayor's office {served_app.make_user(Role.STAKEHOLDER).id}"
    manager = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    manager.on("dialog", lambda dialog: dialog.accept())
    sign_in(manager, served_app.url, served_app.make_user(Role.MANAGER).username)
    manager.locator("#share-label").fill(label)
    manager.get_by_role("button", name="Create link").click()
    url = manager.locator("#share-url code")
    expect(url).to_contain_text("/share/")
    link_url = url.inner_text()
    item = manager.locator("#share-links li", has_text=label)
    expect(item).to_contain_text("until")

    viewer = browser.new_context().new_page()
    viewer.goto(link_url)
    expect(viewer).to_have_url(f"{served_app.url}/dashboard")
    expect(viewer.locator("#connection-status")).to_have_text("Live", timeout=10_000)

    manager.reload()
    expect(item).to_be_visible()
    shot(manager.locator("section:has(#share-title)"), "share-links-listed")
    item.get_by_role("button", name="Revoke").click()
    expect(manager.locator("#share-links li", has_text=label)).to_have_count(0, timeout=10_000)
    expect(viewer).to_have_url(f"{served_app.url}/login?next=/dashboard", timeout=10_000)
    again = viewer.goto(link_url)
    assert again is not None and again.status == 403
    expect(viewer.locator("body")).to_contain_text("expired or was revoked")
    shot(viewer, "share-link-revoked")
    manager.context.close()
    viewer.context.close()


def test_admin_edits_a_lines_routing_and_deletes_it(served_app, page):
    """On Phone lines: change the routing from dial to a queue, then delete the line."""
    from playwright.sync_api import expect

    from crisis_console.services.lines import Lines

    number = f"+1617556{served_app.make_user(Role.STAKEHOLDER).id:04d}"
    line = Lines(served_app.store).create(
        {"number": number, "name": "Edit me", "route": {"type": "dial", "number": "+16175550100"}},
        actor="test",
    )
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, served_app.url, served_app.make_user(Role.ADMIN).username)
    page.goto(f"{served_app.url}/admin/lines")
    row = page.locator("#lines tr", has_text=number)
    row.get_by_text("Edit routing").click()
    row.get_by_label("Normal routing").select_option("enqueue")
    row.get_by_label("Queue").fill("storm-queue")
    row.get_by_role("button", name="Save routing").click()
    row = page.locator("#lines tr", has_text=number)
    expect(row).to_contain_text("enqueue: storm-queue", timeout=10_000)
    assert Lines(served_app.store).require(line.id).route == {"type": "enqueue", "queue": "storm-queue"}
    shot(row, "line-routing-edited")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#lines tr", has_text=number)).to_have_count(0, timeout=10_000)
    assert Lines(served_app.store).get(line.id) is None


def test_changing_ones_password_keeps_this_browser_and_signs_out_the_other(served_app, browser):
    """From the header's Password link: the page lands home signed in; another browser of the
    same user is sent to sign in at once."""
    from playwright.sync_api import expect

    agent = served_app.make_user(Role.AGENT)
    here = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    there = browser.new_context().new_page()
    for page in (here, there):
        sign_in(page, served_app.url, agent.username)
        expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    here.get_by_role("link", name="Password").click()
    here.get_by_label("Current password").fill(PASSWORD)
    here.get_by_label("New password", exact=True).fill("a much longer secret")
    here.get_by_label("New password again").fill("a much longer secret")
    here.get_by_role("button", name="Change password").click()
    expect(here).to_have_url(f"{served_app.url}/agent")
    expect(here.locator(".flash--success")).to_contain_text("Your password is changed")
    expect(here.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    shot(here, "password-changed")
    expect(there).to_have_url(f"{served_app.url}/login?next=/agent", timeout=10_000)
    here.context.close()
    there.context.close()
