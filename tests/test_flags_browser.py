"""In a real browser: an agent flags what they keep hearing; a manager's open console shows it live."""

from __future__ import annotations

from crisis_console.roles import Role
from tests.chromium import BROWSER_MARKS, sign_in

pytestmark = BROWSER_MARKS


def open_page(browser, served_app, user, errors: list[str]):
    """Sign ``user`` in, in a context of their own, and wait until the page is live."""
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    page.on("pageerror", lambda exc: errors.append(f"{user.username}: {exc}"))
    sign_in(page, served_app.url, user.username)
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    return page


def test_agent_flags_by_keystroke_and_the_managers_console_shows_it_live(served_app, browser):
    """F (outside text fields) opens the dialog; Escape closes it and focus returns; the sent
    flag appears on the manager's open console and dashboard without a reload; Promote counts it."""
    from playwright.sync_api import expect

    errors: list[str] = []
    agent = served_app.make_user(Role.AGENT)
    manager_page = open_page(browser, served_app, served_app.make_user(Role.MANAGER), errors)
    board = open_page(browser, served_app, served_app.make_user(Role.STAKEHOLDER), errors)
    for page in (manager_page, board):
        expect(page.locator("#flags-panel")).to_have_attribute("data-loaded", "1")
    expect(board.locator("#flags-panel button")).to_have_count(0)  # the dashboard is read-only
    agent_page = open_page(browser, served_app, agent, errors)
    dialog = agent_page.locator("#flag-dialog")

    # Typing an F in a text field is typing, not the shortcut.
    agent_page.locator("#log-category").focus()
    agent_page.keyboard.press("f")
    expect(agent_page.locator("#log-category")).to_have_value("f")
    expect(dialog).to_be_hidden()
    agent_page.locator("#log-category").fill("")

    # Elsewhere, F opens the dialog; Escape closes it and focus goes back where it was.
    agent_page.locator("#sound-toggle").focus()
    agent_page.keyboard.press("f")
    expect(dialog).to_be_visible()
    expect(agent_page.locator("#flag-text")).to_be_focused()
    agent_page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(agent_page.locator("#sound-toggle")).to_be_focused()

    text = f"hydrant on Route {agent.id} pouring water 24/7"  # "/" is the page's search key elsewhere
    agent_page.keyboard.press("F")
    agent_page.keyboard.type(text)
    agent_page.locator("#flag-zip").fill("02124")
    agent_page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(agent_page.locator("#flag-status")).to_contain_text("Sent at")
    expect(agent_page.locator("#sound-toggle")).to_be_focused()

    group = manager_page.locator(".flag-group", has_text=text)
    expect(group).to_contain_text("1 agent", timeout=10_000)
    expect(group).to_contain_text("ZIP 02124")
    expect(board.locator(".flag-group", has_text=text)).to_contain_text("1 agent", timeout=10_000)

    group.get_by_label("Category name").fill(f"Hydrant flowing {agent.id}")
    group.get_by_role("button", name="Promote to category").click()
    expect(manager_page.locator("#flag-groups-status")).to_contain_text(
        f"now counts as Hydrant flowing {agent.id}: 1 complaint added"
    )
    expect(manager_page.locator(".flag-group", has_text=text)).to_have_count(0)
    expect(board.locator(".flag-group", has_text=text)).to_have_count(0, timeout=10_000)
    expect(board.locator("#flag-groups-status")).to_contain_text(f"now counts as Hydrant flowing {agent.id}.")
    assert errors == []
