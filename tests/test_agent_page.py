"""The agent page in a real browser: the newest push on top, focus after "Got it", the sound
the browser holds back, the offline banner, and scripts in the agent's own language."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from crisis_console.roles import Role
from tests.chromium import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, sign_in
from tests.test_browser import approved_script_via_api

pytestmark = BROWSER_MARKS

LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium that, like a desktop browser, holds sound back until the page is used."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--autoplay-policy=document-user-activation-required"],
            headless=True,
        )
        yield chromium
        chromium.close()


def manager_api(served_app) -> requests.Session:
    """Return an API session of a new manager (bearer token)."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {served_app.token_for(served_app.make_user(Role.MANAGER))}"
    return http


def push(served_app, script_id: int) -> dict[str, object]:
    """Push a script to every agent; return the push."""
    response = manager_api(served_app).post(
        f"{served_app.url}/api/v1/scripts/{script_id}/push", json={"audience": "all"}
    )
    assert response.status_code == 201, response.text
    return response.json()


def agent_page(browser, served_app, viewport: dict[str, int] | None = None):
    """Open a new agent's page, live; return (page, agent)."""
    from playwright.sync_api import expect

    agent = served_app.make_user(Role.AGENT)
    page = browser.new_context(viewport=viewport or LAPTOP).new_page()
    sign_in(page, served_app.url, agent.username)
    expect(page).to_have_url(f"{served_app.url}/agent")
    # Opened afresh, as after a reload or a restored tab: the sign-in clicks no longer count as
    # having used the page, so the browser holds sound back.
    page.goto(f"{served_app.url}/agent")
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=10_000)
    return page, agent


#: Real Boston 311 category names, long ones: the quick-log's six shortcuts at their widest.
LONG_NAMES = [
    "Request for Snow Plowing",
    "Sidewalk Repair (Make Safe)",
    "Pothole Repair (Internal)",
    "Unshoveled Sidewalk",
    "Street Light Outages",
    "Request for Pothole Repair",
]


def busiest_hour(served_app) -> None:
    """Make the last hour's six most logged categories long-named ones, whatever ran before, so
    the page is measured with its tallest quick-log."""
    from crisis_console.services.categories import Categories
    from crisis_console.services.intake import Intake

    n = served_app.make_user(Role.STAKEHOLDER).id
    catalogue = Categories(served_app.store)
    records = []
    for name in LONG_NAMES:
        code = catalogue.create({"name": f"{name} {n}"}, actor="test").code
        records += [{"category": code, "zip": "02124"}] * 50
    result = Intake(served_app.store).submit(records, channel="phone", source="test")
    assert result["accepted"] == len(records), result["rejected"][:3]


@pytest.mark.parametrize("viewport", [LAPTOP, TABLET], ids=["1366x768", "820x1180"])
def test_a_new_push_shows_at_the_top_without_scrolling(served_app, browser, viewport):
    """The newest pushed script starts in the upper half of the window, its title and first lines
    in view, and the page never scrolls sideways."""
    from playwright.sync_api import expect

    title = f"Top of the page {served_app.make_user(Role.STAKEHOLDER).id}"
    script_id = approved_script_via_api(served_app, title)
    busiest_hour(served_app)
    page, _agent = agent_page(browser, served_app, viewport)
    push(served_app, script_id)
    card = page.locator("#feed .script-card").first
    expect(card).to_contain_text(title, timeout=10_000)
    box = card.bounding_box()
    heading = card.locator("h3").bounding_box()
    body = card.locator(".script-body").bounding_box()
    assert box["y"] < viewport["height"] / 2, box
    assert heading["y"] + heading["height"] <= viewport["height"]
    assert body["y"] + 20 <= viewport["height"]
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert page.evaluate("window.scrollY") == 0
    page.context.close()


def test_got_it_by_keyboard_moves_focus_to_the_next_card_then_the_heading(served_app, browser):
    """Enter on "Got it" sends focus to the next card still unread, then to the list heading."""
    from playwright.sync_api import expect

    n = served_app.make_user(Role.STAKEHOLDER).id
    older = approved_script_via_api(served_app, f"Older push {n}")
    newer = approved_script_via_api(served_app, f"Newer push {n}")
    page, _agent = agent_page(browser, served_app)
    push(served_app, older)
    push(served_app, newer)
    newer_card = page.locator("#feed .script-card", has_text=f"Newer push {n}")
    older_card = page.locator("#feed .script-card", has_text=f"Older push {n}")
    expect(newer_card).to_have_class("script-card script-card--unread", timeout=10_000)
    expect(older_card).to_have_class("script-card script-card--unread", timeout=10_000)

    newer_card.get_by_role("button", name="Got it").focus()
    page.keyboard.press("Enter")
    expect(newer_card).to_have_class("script-card", timeout=10_000)
    expect(older_card.locator("article")).to_be_focused()

    page.keyboard.press("Tab")
    expect(older_card.get_by_role("button", name="Got it")).to_be_focused()
    page.keyboard.press("Enter")
    expect(older_card).to_have_class("script-card", timeout=10_000)
    expect(page.locator("#feed-title")).to_be_focused()
    page.context.close()


def test_a_blocked_sound_says_so_and_turn_on_sound_enables_it(served_app, browser):
    """The browser refuses to play before the agent uses the page: a calm "Turn on sound" says so;
    once pressed, the next push is heard."""
    from playwright.sync_api import expect

    script_id = approved_script_via_api(served_app, f"Heard {served_app.make_user(Role.STAKEHOLDER).id}")
    page, _agent = agent_page(browser, served_app)
    notice = page.locator("#sound-blocked")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("holding back the sound")
    notice.get_by_role("button", name="Turn on sound").click()
    expect(notice).to_be_hidden()
    expect(page.locator("#sound-toggle")).to_have_attribute("data-sound-state", "ready")
    push(served_app, script_id)
    expect(page.locator("#sound-toggle")).to_have_attribute("data-last-cue", "played", timeout=10_000)
    expect(notice).to_be_hidden()
    page.context.close()


def test_sound_off_shows_no_notice(served_app, browser):
    """An agent who muted the cue is not asked to turn sound on."""
    from playwright.sync_api import expect

    page, _agent = agent_page(browser, served_app)
    page.get_by_role("button", name="Sound on").click()
    expect(page.locator("#sound-toggle")).to_have_text("Sound off")
    expect(page.locator("#sound-blocked")).to_be_hidden()
    page.context.close()


def test_offline_shows_a_banner_until_the_connection_is_back(served_app, browser):
    """Cut off, the page says since when it may be out of date; back online, the banner goes and
    the push it missed appears."""
    from playwright.sync_api import expect

    title = f"Missed while offline {served_app.make_user(Role.STAKEHOLDER).id}"
    script_id = approved_script_via_api(served_app, title)
    page, _agent = agent_page(browser, served_app)
    banner = page.locator("#offline-banner")
    expect(banner).to_be_hidden()

    page.context.set_offline(True)
    # The open websocket does not notice the network going away by itself: close it as a
    # dropped connection would, so the client starts reconnecting (and fails while offline).
    page.evaluate("window.crisisConsole.socket.io.engine.close()")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("Offline since")
    expect(banner).to_contain_text("scripts on this page may be out of date; reconnecting…")
    push(served_app, script_id)

    page.context.set_offline(False)
    expect(page.locator("#connection-status")).to_have_text("Live", timeout=20_000)
    expect(banner).to_be_hidden()
    expect(page.locator("#feed .script-card", has_text=title)).to_be_visible(timeout=10_000)
    page.context.close()


def test_agent_reads_scripts_in_their_language_first(served_app, browser):
    """An agent who reads Spanish sees the Spanish version, the English one folded away; a push of
    the English script shows the Spanish card, and one click shows the original in place."""
    from playwright.sync_api import expect

    n = served_app.make_user(Role.STAKEHOLDER).id
    english_title, spanish_title = f"Warming centres {n}", f"Centros de calor {n}"
    english = approved_script_via_api(served_app, english_title)
    writer, reviewer = manager_api(served_app), manager_api(served_app)
    base = f"{served_app.url}/api/v1"
    spanish = writer.post(
        f"{base}/scripts",
        json={
            "title": spanish_title,
            "topic": "Safety",
            "language": "es",
            "body": "Los centros de calor están **abiertos**.",
            "translation_of": english,
        },
    ).json()
    writer.post(f"{base}/scripts/{spanish['id']}/submit").raise_for_status()
    reviewer.post(f"{base}/scripts/{spanish['id']}/approve").raise_for_status()

    page, agent = agent_page(browser, served_app)
    main = page.locator("#library")
    expect(main).to_contain_text(english_title)
    expect(main).not_to_contain_text(spanish_title)

    page.get_by_label("My language").select_option("es")
    expect(page.get_by_label("My language")).to_have_attribute("data-saved", "es")
    assert served_app.accounts.require(agent.id).language == "es"
    expect(main).to_contain_text(spanish_title)
    expect(main).not_to_contain_text(english_title)
    other = page.locator("#other-languages")
    expect(page.locator("#other-languages > summary")).to_contain_text("Other languages (")
    expect(other.locator(".library-item", has_text=english_title)).to_be_hidden()
    page.locator("#other-languages > summary").click()
    expect(other.locator(".library-item", has_text=english_title)).to_be_visible()

    push(served_app, english)
    card = page.locator("#feed .script-card").first
    expect(card.locator("h3")).to_have_text(spanish_title, timeout=10_000)
    expect(card.locator(".translation-note")).to_contain_text(english_title)
    card.get_by_role("button", name="In English (as pushed)").click()
    expect(card.locator("h3")).to_have_text(english_title)
    expect(card.locator(".script-body")).to_contain_text("Warming centres are open.")
    card.get_by_role("button", name="En español").click()
    expect(card.locator("h3")).to_have_text(spanish_title)

    page.reload()
    expect(page.get_by_label("My language")).to_have_value("es")
    expect(page.locator("#feed .script-card").first.locator("h3")).to_have_text(spanish_title)
    page.context.close()


def test_a_seq_jump_makes_the_page_fetch_the_missing_push_and_show_each_once(served_app, browser):
    """A push that never reached the page (its publish lost) is fetched when the next one
    arrives numbered two ahead, and every push shows once, newest on top."""
    from playwright.sync_api import expect

    from crisis_console.services.pushes import Pushes

    first_title = f"Before the gap {served_app.make_user(Role.STAKEHOLDER).id}"
    lost_title = f"Lost on the queue {served_app.make_user(Role.STAKEHOLDER).id}"
    next_title = f"After the gap {served_app.make_user(Role.STAKEHOLDER).id}"
    first_id, lost_id, next_id = (
        approved_script_via_api(served_app, t) for t in (first_title, lost_title, next_title)
    )
    page, _agent = agent_page(browser, served_app)
    fetches: list[str] = []
    page.on("request", lambda request: fetches.append(request.url) if "after_seq=" in request.url else None)
    first = push(served_app, first_id)
    expect(page.locator("#feed .script-card").first).to_contain_text(first_title, timeout=10_000)
    expect(page.locator("#feed")).to_have_attribute("data-cursor", str(first["seq"]), timeout=10_000)
    # Stored but never announced on the queue, as when a publish is lost.
    lost = Pushes(served_app.store).push(lost_id, "all", actor="test")
    after = push(served_app, next_id)
    assert after["seq"] == lost["seq"] + 1
    cards = page.locator("#feed .script-card")
    expect(cards.nth(1)).to_contain_text(lost_title, timeout=10_000)
    expect(cards.first).to_contain_text(next_title)
    assert any(url.endswith(f"after_seq={first['seq']}") for url in fetches), fetches
    for push_id in (first["id"], lost["id"], after["id"]):
        expect(page.locator(f'#feed [data-push-id="{push_id}"]')).to_have_count(1)
    page.context.close()


def test_got_it_is_retried_until_the_server_confirms_and_only_then_says_saved(served_app, browser):
    """With the socket down and HTTP acknowledgements refused (503), the card says "Not saved
    yet, retrying…", then "Saved" once a retry is confirmed; the ack is recorded."""
    from playwright.sync_api import expect

    title = f"Retry the ack {served_app.make_user(Role.STAKEHOLDER).id}"
    script_id = approved_script_via_api(served_app, title)
    page, agent = agent_page(browser, served_app)
    pushed = push(served_app, script_id)
    card = page.locator(f'#feed [data-push-id="{pushed["id"]}"]')
    expect(card).to_contain_text(title, timeout=10_000)
    refused = {"count": 0, "until_seen": True}

    def flaky(route):
        # Refused until the test has seen the page say so (no race with the retry's timer).
        if refused["until_seen"]:
            refused["count"] += 1
            route.fulfill(
                status=503, content_type="application/json", body='{"error": {"code": "store_unavailable"}}'
            )
        else:
            route.continue_()

    page.route("**/api/v1/pushes/*/ack", flaky)
    page.evaluate("window.crisisConsole.socket.disconnect()")
    card.get_by_role("button", name="Got it").click()
    expect(card.locator(".got-it")).to_have_text("Not saved yet, retrying…", timeout=10_000)
    expect(card.locator(".ack-status")).to_have_count(0)
    refused["until_seen"] = False
    expect(card.locator(".ack-status")).to_have_text("Saved", timeout=15_000)
    assert refused["count"] >= 1
    _audience, _delivered, acked = served_app.store.pushes.receipts(pushed["id"])
    assert str(agent.id) in acked
    page.context.close()
