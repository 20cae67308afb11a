"""In a real browser: an admin adds, renames, retires and merges categories on the Categories page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crisis_console.roles import Role
from tests.chromium import CHROMIUM, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.served,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]

#: axe-core, vendored for the page tests (the axe check is skipped until it is).
AXE = Path(__file__).resolve().parent.parent / "crisis_console/static/vendor/axe-core/axe.min.js"


@pytest.fixture
def admin_page(served_app, browser):
    """An admin signed in on the Categories page, with every console error collected."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    errors: list[str] = []

    def console(message) -> None:
        # /favicon.ico is fixed on its own (issue 11, item 10); every other error counts.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, served_app.url, served_app.make_user(Role.ADMIN).username)
    page.get_by_role("link", name="Categories").click()
    page.wait_for_url(f"{served_app.url}/admin/categories")
    yield page, errors
    context.close()


def test_admin_adds_renames_retires_and_merges(served_app, admin_page):
    """The catalogue's whole life on the page, with the counts kept through a merge."""
    from playwright.sync_api import expect

    from crisis_console.services.categories import Categories
    from crisis_console.services.intake import Intake

    page, errors = admin_page
    tag = served_app.make_user(Role.AGENT).id
    # Add.
    page.get_by_label("Name", exact=True).first.fill(f"Sandbag request {tag}")
    page.get_by_label("Spanish name", exact=True).first.fill(f"Pedido de sacos de arena {tag}")
    page.get_by_label("Aliases", exact=True).first.fill(f"sandbags {tag}, need sandbags {tag}")
    page.get_by_label("Hazards", exact=True).first.fill("flood")
    page.get_by_role("button", name="Add category").click()
    code = f"sandbag_request_{tag}"
    row = page.locator(f'#categories tr[data-code="{code}"]')
    expect(row).to_contain_text(f"sandbags {tag}, need sandbags {tag}")
    # Rename.
    row.get_by_text("Edit").click()
    row.get_by_label("Name", exact=True).fill(f"Sandbag pickup {tag}")
    row.get_by_role("button", name=f"Save Sandbag request {tag}").click()
    expect(page.locator(f'#categories tr[data-code="{code}"] .category-name')).to_have_text(
        f"Sandbag pickup {tag}"
    )
    assert Categories(served_app.store).require(code).name == f"Sandbag pickup {tag}"
    # Retire, then it is listed as retired and can be restored.
    page.get_by_role("button", name=f"Retire Sandbag pickup {tag}").click()
    expect(page.locator(f'#retired-categories li[data-code="{code}"]')).to_be_visible()
    expect(page.locator(f'#categories tr[data-code="{code}"]')).to_have_count(0)
    assert Categories(served_app.store).require(code).status == "retired"
    # Merge two categories: the kept one counts both.
    service = Categories(served_app.store)
    away = service.create({"name": f"Flooded cellar {tag}"}, actor="test").code
    kept = service.create({"name": f"Basement water {tag}"}, actor="test").code
    Intake(served_app.store).submit(
        [{"category": away}] * 3 + [{"category": kept}] * 2, channel="phone", source="test"
    )
    page.reload()
    expect(page.locator(f'#categories tr[data-code="{away}"] .count-day')).to_have_text("3")
    page.get_by_label("Merge away").select_option(away)
    page.get_by_label("Into (kept)").select_option(kept)
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.locator(".flash--success")).to_contain_text(f"into 'Basement water {tag}'")
    expect(page.locator(f'#categories tr[data-code="{kept}"] .count-day')).to_have_text("5")
    expect(page.locator(f'#categories tr[data-code="{kept}"] .category-aliases')).to_contain_text(
        f"Flooded cellar {tag}"
    )
    expect(page.locator(f'#merged-categories li[data-code="{away}"]')).to_contain_text(
        f"Basement water {tag}"
    )
    assert errors == []


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not vendored in this checkout")
def test_the_categories_page_passes_axe(served_app, admin_page):
    """No accessibility violation on the page (labels on every input, contrast, regions)."""
    page, errors = admin_page
    # From the static folder, so the page's policy (script-src 'self') lets it run.
    page.add_script_tag(url="/static/vendor/axe-core/axe.min.js")
    result = page.evaluate("async () => JSON.stringify((await axe.run(document)).violations)")
    violations = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in json.loads(result)]
    assert violations == []
    assert errors == []
