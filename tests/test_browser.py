"""In a real browser: an admin adds a manager, who signs in and lands on a live console."""

from __future__ import annotations

import re

import pytest

from crisis_console.roles import Role
from tests.chromium import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, sign_in  # noqa: F401 (shared)
from tests.helpers import PASSWORD

pytestmark = BROWSER_MARKS


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def test_admin_adds_a_manager_who_lands_on_a_live_console(served_app, page):
    """The issue's story, end to end in Chromium."""
    from playwright.sync_api import expect

    admin = served_app.make_user(Role.ADMIN)
    sign_in(page, served_app.url, admin.username)
    expect(page).to_have_url(f"{served_app.url}/admin/users")
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)

    manager_name = f"eoc-{admin.id}"
    page.get_by_label("Username").fill(manager_name)
    page.get_by_label("Full name").fill("Dana Reyes")
    page.locator("#new-role").select_option("manager")
    page.locator("#new-password").fill(PASSWORD)
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".flash--success")).to_contain_text(f"Created manager '{manager_name}'")
    expect(page.locator(f'tr[data-username="{manager_name}"]')).to_contain_text("Dana Reyes")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{served_app.url}/login")

    sign_in(page, served_app.url, manager_name)
    expect(page).to_have_url(f"{served_app.url}/manager")
    expect(page.locator("h1")).to_have_text("Manager console")
    expect(page.locator(".role-badge")).to_have_text("manager")
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    expect(page.locator("#activity")).to_contain_text(f"User “{manager_name}”")


def test_wrong_password_shows_an_error_in_the_page(served_app, page):
    """A wrong password keeps you on the form with a readable message."""
    from playwright.sync_api import expect

    agent = served_app.make_user(Role.AGENT)
    sign_in(page, served_app.url, agent.username, "not the password")
    expect(page.locator(".flash--error")).to_contain_text("Wrong username or password")
    expect(page.get_by_label("Username")).to_have_value(agent.username)


def test_signing_out_elsewhere_sends_the_page_back_to_sign_in(served_app, page):
    """When the user signs out in another place, the open page notices and returns to sign-in."""
    from playwright.sync_api import expect

    agent = served_app.make_user(Role.AGENT)
    sign_in(page, served_app.url, agent.username)
    expect(page).to_have_url(f"{served_app.url}/agent")
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    served_app.accounts.set_active(agent.id, False, actor="test")
    admin_http = served_app.session_for(served_app.make_user(Role.ADMIN))
    admin_http.patch(f"{served_app.url}/api/v1/users/{agent.id}", json={"active": False})
    expect(page).to_have_url(f"{served_app.url}/login?next=/agent", timeout=10_000)


def approved_script_via_api(served_app, title: str) -> int:
    """Write a script as one manager and approve it as another; return its id."""
    import requests

    writer, reviewer = served_app.make_user(Role.MANAGER), served_app.make_user(Role.MANAGER)
    sessions = []
    for manager in (writer, reviewer):
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {served_app.token_for(manager)}"
        sessions.append(http)
    base = f"{served_app.url}/api/v1"
    body = {"title": title, "topic": "Safety", "language": "en", "body": "Warming centres are **open**."}
    script = sessions[0].post(f"{base}/scripts", json=body).json()
    sessions[0].post(f"{base}/scripts/{script['id']}/submit").raise_for_status()
    sessions[1].post(f"{base}/scripts/{script['id']}/approve").raise_for_status()
    return script["id"]


def test_manager_pushes_and_agent_sees_it_live(served_app, browser):
    """Two windows: the manager pushes, the agent's open page shows it highlighted without a
    reload; "Got it" clears the highlight and the manager's bar counts it."""
    from playwright.sync_api import expect

    title = f"Warming centres {served_app.make_user(Role.STAKEHOLDER).id}"
    approved_script_via_api(served_app, title)
    agent_user = served_app.make_user(Role.AGENT)
    manager_user = served_app.make_user(Role.MANAGER)
    agent_page = browser.new_context().new_page()
    manager_page = browser.new_context(viewport={"width": 1280, "height": 1200}).new_page()
    sign_in(agent_page, served_app.url, agent_user.username)
    sign_in(manager_page, served_app.url, manager_user.username)
    expect(agent_page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    expect(manager_page.locator("#connection-status")).to_have_text("Live", timeout=10_000)

    row = manager_page.locator("section:has(#live-title) tr", has_text=title)
    row.get_by_role("button", name="Push").click()

    card = agent_page.locator("#feed .script-card", has_text=title)
    expect(card).to_have_class("script-card script-card--unread", timeout=10_000)
    expect(card.locator(".script-body strong")).to_have_text("open")
    card.get_by_role("button", name="Got it").click()
    expect(card).to_have_class("script-card", timeout=5_000)

    push_row = manager_page.locator(".push", has_text=title)
    expect(push_row.locator(".push__acked")).to_have_text("1", timeout=10_000)
    expect(push_row.locator(".push__pending")).not_to_contain_text(agent_user.display_name, timeout=10_000)
    # How soon it reached and was acknowledged by the connected screens (this agent's among them).
    time_or_not = r"(\d+ ms|\d+\.\d s|not yet)"
    shares = " · ".join(f"{share} % in {time_or_not}" for share in (50, 90, 100))
    expect(push_row.locator(".push__speed")).to_have_text(
        re.compile(rf"Reached {shares} of the \d+ connected screens?\. Acknowledged {shares}\.$"),
        timeout=10_000,
    )
    expect(push_row.locator(".push__speed")).to_contain_text(re.compile(r"Reached 50 % in \d"))
    agent_page.context.close()
    manager_page.context.close()


def test_phone_line_story_in_the_browser(served_app, browser):
    """An admin adds the line; a manager writes the announcement and sees its length; a
    second manager approves and activates it; a call arrives and the statistics move live."""
    from playwright.sync_api import expect

    from crisis_console.phonecall import PhoneCall
    from tests.conftest import TWILIO_TOKEN

    number = f"+1617555{served_app.make_user(Role.STAKEHOLDER).id:04d}"
    admin = browser.new_context().new_page()
    sign_in(admin, served_app.url, served_app.make_user(Role.ADMIN).username)
    admin.goto(f"{served_app.url}/admin/lines")
    admin.get_by_label("Twilio number (E.164)").fill(number)
    admin.get_by_label("Name", exact=True).fill("Storm line")
    admin.locator("#route-type").select_option("enqueue")
    admin.locator("#new-line").get_by_label("Queue").fill("311-agents")
    admin.get_by_role("button", name="Add line").click()
    expect(admin.locator("#lines")).to_contain_text(number)
    admin.context.close()

    writer = browser.new_context().new_page()
    sign_in(writer, served_app.url, served_app.make_user(Role.MANAGER).username)
    writer.goto(f"{served_app.url}/manager/phone")
    writer.locator("#ann-line").select_option(label=f"Storm line {number} (en, es)")
    writer.locator("#ann-en").fill("Due to the winter storm, trash collection is suspended until Thursday.")
    expect(writer.locator('[data-for="ann-en"]')).to_have_text("About 4 s to say.")
    writer.locator("#ann-es").fill(
        "Debido a la tormenta, la recolección de basura se suspende hasta el jueves."
    )
    writer.get_by_role("button", name="Save draft").click()
    item = writer.locator(".announcement", has_text=number).first
    expect(item).to_contain_text("draft")
    item.get_by_role("button", name="Submit for review").click()
    expect(writer.locator(".announcement", has_text=number).first).to_contain_text(
        "Another manager must approve it."
    )
    writer.context.close()

    reviewer = browser.new_context().new_page()
    reviewer.on("dialog", lambda dialog: dialog.accept())
    sign_in(reviewer, served_app.url, served_app.make_user(Role.MANAGER).username)
    reviewer.goto(f"{served_app.url}/manager/phone")
    reviewer.locator(".announcement", has_text=number).first.get_by_role("button", name="Approve").click()
    reviewer.locator(".announcement", has_text=number).first.get_by_role("button", name="Activate").click()
    item = reviewer.locator(".announcement", has_text=number).first
    expect(item).to_contain_text("active")
    expect(reviewer.locator("#connection-status")).to_have_text("Live", timeout=10_000)

    PhoneCall(served_app.url, TWILIO_TOKEN, number).run(digits="", say=lambda line: None)
    expect(item.locator('[data-stat="calls"]')).to_have_text("1", timeout=10_000)
    expect(item.locator('[data-stat="routed"]')).to_have_text("1", timeout=10_000)
    reviewer.context.close()


def test_agent_logs_a_call_and_the_dashboard_shows_it_live(served_app, browser):
    """Two keystrokes on the agent page; the stakeholder's open dashboard counts it without a reload."""
    from playwright.sync_api import expect

    from crisis_console.services.categories import Categories

    name = f"Downed tree {served_app.make_user(Role.STAKEHOLDER).id}"
    code = Categories(served_app.store).create({"name": name, "aliases": ["tree down"]}, actor="test").code

    dashboard = browser.new_context().new_page()
    sign_in(dashboard, served_app.url, served_app.make_user(Role.STAKEHOLDER).username)
    expect(dashboard).to_have_url(f"{served_app.url}/dashboard")
    expect(dashboard.locator("#connection-status")).to_have_text("Live", timeout=10_000)

    agent = browser.new_context().new_page()
    sign_in(agent, served_app.url, served_app.make_user(Role.AGENT).username)
    agent.get_by_label("Category").fill(name)
    agent.get_by_label("ZIP").fill("02124")
    agent.get_by_label("ZIP").press("Enter")
    expect(agent.locator("#log-status")).to_contain_text(f"Logged “{name}” in 02124")
    expect(agent.get_by_label("Category")).to_have_value("")
    agent.get_by_label("Category").fill("no such category")
    agent.get_by_label("Category").press("Enter")
    expect(agent.locator("#log-status")).to_contain_text("Unknown category")

    row = dashboard.locator(f'#counts tr[data-category="{code}"]')
    expect(row.locator(".count")).to_have_text("1", timeout=10_000)
    expect(row).to_contain_text(name)
    agent.context.close()
    dashboard.context.close()


def test_a_call_logged_before_the_page_scripts_run_is_held_then_sent(served_app, browser):
    """An agent who types and presses Enter while the page's scripts still load loses nothing:
    the browser's own submit (a GET that reloads the page) is held and sent by the script."""
    from playwright.sync_api import expect

    from crisis_console.services.categories import Categories

    name = f"Fallen wire {served_app.make_user(Role.STAKEHOLDER).id}"
    Categories(served_app.store).create({"name": name}, actor="test")
    page = browser.new_context().new_page()
    sign_in(page, served_app.url, served_app.make_user(Role.AGENT).username)
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    held: list = []
    page.route("**/static/js/quicklog.js*", lambda route: held.append(route))
    page.goto(f"{served_app.url}/agent", wait_until="commit")
    page.get_by_label("Category").fill(name)
    page.get_by_label("ZIP").fill("02124")
    page.get_by_label("ZIP").press("Enter")
    while not held:  # the route handler runs while Playwright waits
        page.wait_for_timeout(50)
    assert page.evaluate("document.readyState") == "loading"
    held[0].continue_()
    expect(page.locator("#log-status")).to_contain_text(f"Logged “{name}” in 02124")
    assert page.url == f"{served_app.url}/agent"
    page.context.close()


def test_manager_shares_the_dashboard_and_a_guest_opens_it(served_app, browser):
    """The manager creates a 24-hour link on the console; a browser without an account opens it
    and sees the live dashboard, but not the manager console."""
    from playwright.sync_api import expect

    manager = browser.new_context().new_page()
    sign_in(manager, served_app.url, served_app.make_user(Role.MANAGER).username)
    # Live means the page's scripts have run: the form is then sent by them, not natively.
    expect(manager.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    manager.locator("#share-label").fill("EOC wall screen")
    manager.get_by_role("button", name="Create link").click()
    expect(manager.locator("#share-url code")).to_contain_text("/share/", timeout=10_000)
    url = manager.locator("#share-url code").inner_text()
    guest = browser.new_context().new_page()
    guest.goto(url)
    expect(guest).to_have_url(f"{served_app.url}/dashboard")
    expect(guest.locator(".role-badge")).to_have_text("viewer")
    expect(guest.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    guest.goto(f"{served_app.url}/manager")
    expect(guest.locator("h1")).to_have_text("Not allowed")
    manager.context.close()
    guest.context.close()


def test_a_spike_alerts_the_manager_and_one_click_drafts_the_script(served_app, page):
    """During an event, a surge on a category a hazard answers raises an alert on the open console
    and offers the hazard's script; one click makes the filled draft."""
    import requests
    from playwright.sync_api import expect

    from crisis_console.services.categories import Categories
    from crisis_console.services.intake import Intake

    manager = served_app.make_user(Role.MANAGER)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {served_app.token_for(manager)}"
    base = f"{served_app.url}/api/v1"
    name = f"Grid failure {manager.id}"
    event = http.post(
        f"{base}/events", json={"name": name, "kind": "power_outage", "severity": "severe"}
    ).json()
    http.post(f"{base}/events/{event['id']}/declare").raise_for_status()
    try:
        sign_in(page, served_app.url, manager.username)
        expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
        code = f"downed_wire_{manager.id}"
        Categories(served_app.store).create(
            {"code": code, "name": f"Downed wire {manager.id}", "hazards": ["power_outage"]}
        )
        Intake(served_app.store).submit(
            [{"category": code, "zip": "02124"}] * 30, channel="phone", source="test"
        )
        spike = page.locator(f'#spikes li[data-category="{code}"]')
        expect(spike.locator(".suggestion").first).to_contain_text(name, timeout=20_000)
        expect(page.locator("#recent-alerts")).to_contain_text(
            f"Spike in Downed wire {manager.id} in 02124", timeout=10_000
        )
        spike.locator('.suggestion[data-hazard="power_outage"]').get_by_role(
            "button", name="Draft script"
        ).click()
        expect(page).to_have_url(re.compile(r"/manager/scripts/\d+$"), timeout=10_000)
        expect(page.locator("h1")).to_contain_text(name)
    finally:
        http.post(f"{base}/events/{event['id']}/stand-down").raise_for_status()


def test_a_hazards_categories_surging_together_show_on_the_open_dashboard(served_app, browser):
    """Three and two complaints in two categories of one hazard, each too few alone, appear on a
    stakeholder's open dashboard as one hazard spike, without a reload."""
    from datetime import timedelta

    from playwright.sync_api import expect

    from crisis_console import clock
    from crisis_console.services.categories import Categories
    from crisis_console.services.intake import Intake

    viewer = served_app.make_user(Role.STAKEHOLDER)
    hazard = f"ice_storm_{viewer.id}"
    for name in ("Icy sidewalk", "Sanding request"):
        Categories(served_app.store).create({"name": f"{name} {viewer.id}", "hazards": [hazard]})
    Categories(served_app.store).create({"name": f"Pothole {viewer.id}"})
    now = clock.now()
    intake = Intake(served_app.store)
    # The console was running in the three weeks before (a pothole a day), with no ice at all.
    history = [
        {"category": f"pothole {viewer.id}", "occurred_at": clock.iso(now - timedelta(days=d))}
        for d in range(1, 22)
    ]
    assert intake.submit(history, channel="phone", source="test")["accepted"] == 21

    page = browser.new_context().new_page()
    sign_in(page, served_app.url, viewer.username)
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    surge = [{"category": f"icy sidewalk {viewer.id}"}] * 3 + [
        {"category": f"sanding request {viewer.id}"}
    ] * 2
    assert intake.submit(surge, channel="phone", source="test")["accepted"] == 5
    spike = page.locator(f'#spikes li[data-hazard="{hazard}"]')
    expect(spike).to_contain_text(
        f"Ice storm {viewer.id} contacts (Icy sidewalk {viewer.id}, Sanding request {viewer.id})",
        timeout=20_000,
    )
    expect(spike).to_contain_text("5 vs")
    page.context.close()
