"""axe-core finds no accessibility violation on any page of any role, on a laptop and a tablet.

Pages come from each role's navigation and links (as in the crawl); each is checked once its live
connection is up and the network is idle, with every disclosure opened so that the forms folded
inside are checked too. axe-core is the copy vendored for the tests, never loaded by the pages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from crisis_console.public.pages import PublicSettings, render_public_pages
from tests.browsing import (
    Scene,
    discover_pages,
    shape,
    sign_in,
    wait_until_live,
)
from tests.chromium import BROWSER_MARKS
from tests.helpers import wait_until_served

pytestmark = BROWSER_MARKS

AXE = Path(__file__).resolve().parent.parent / "crisis_console/static/vendor/axe-core/axe.min.js"
ROLES = ["agent", "stakeholder", "viewer", "manager", "admin"]
VIEWPORTS = {"laptop": {"width": 1366, "height": 768}, "tablet": {"width": 820, "height": 1180}}
#: Violations known today, as (rule id, page shape pattern, target pattern, why). Each entry names
#: the issue item that removes it; the list should be empty.
ALLOWED: list[tuple[str, str, str, str]] = []

RUN_AXE_JS = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")) }));
}"""


def axe_context(browser: Any, scene: Scene) -> Any:
    """Open a laptop-sized context whose pages take axe-core although their Content-Security-Policy
    allows no inline script (the public page none at all): the policy is what tests/test_crawl.py
    and tests/test_security_headers.py check, accessibility what this file does."""
    return browser.new_context(viewport=VIEWPORTS["laptop"], base_url=scene.url, bypass_csp=True)


def allowed(rule: str, path: str, target: str) -> bool:
    """Say whether a violation is on the allowlist."""
    return any(rule == r and re.search(p, shape(path)) and re.search(t, target) for r, p, t, _why in ALLOWED)


def violations_on(page: Any, path: str) -> list[str]:
    """Return axe's violations on the open page at each viewport, once it has settled and its
    disclosures are open (the page is resized in place, as a tablet turned would be)."""
    page.wait_for_load_state("networkidle")
    page.eval_on_selector_all("details", "els => els.forEach((d) => { d.open = true; })")
    page.add_script_tag(path=str(AXE))  # inline: the context bypasses the pages' policy for it
    found = []
    for name, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        for v in page.evaluate(RUN_AXE_JS):
            targets = [t for t in v["targets"] if not allowed(v["id"], path, t)]
            if targets:
                found.append(
                    f"[{name}] {v['id']} ({v['impact']}: {v['help']}) on {path} at {', '.join(targets[:5])}"
                )
    page.set_viewport_size(VIEWPORTS["laptop"])
    return found


@pytest.mark.parametrize("role", ROLES)
def test_no_page_has_an_axe_violation(role: str, scene: Scene, browser: Any) -> None:
    """Every page the role reaches passes axe-core at 1366×768 and at 820×1180."""
    context = axe_context(browser, scene)
    page = context.new_page()
    try:
        sign_in(page, scene, role)
        wait_until_live(page)
        found: list[str] = []
        # Two pages of each shape (a script waiting for review, an approved one) are enough here.
        pages = discover_pages(
            page, scene, visit=lambda path: found.extend(violations_on(page, path)), per_shape=2
        )
        print(f"\n{role}: {len(pages)} pages: {' '.join(pages)}")
        print("\n".join(found))
        assert not found, "\n".join(found)
    finally:
        context.close()


def test_axe_reports_what_it_must(scene: Scene, browser: Any) -> None:
    """A field without a label and an image without a text alternative, added to a real page as
    it loads, are reported (so a clean run means axe really looked)."""
    context = axe_context(browser, scene)
    context.add_init_script(
        'document.addEventListener("DOMContentLoaded", () => document.querySelector("main")'
        '.insertAdjacentHTML(\'beforeend\', \'<input id="probe-field"><img id="probe-image" src="/static/none.png">\'));'
    )
    page = context.new_page()
    try:
        sign_in(page, scene, "stakeholder")
        wait_until_live(page)
        found = "\n".join(violations_on(page, "/dashboard"))
        assert re.search(r"\[laptop\] label .*#probe-field", found), found
        assert re.search(r"\[tablet\] image-alt .*#probe-image", found), found
    finally:
        context.close()


def test_the_public_page_has_no_axe_violation(scene: Scene, served_app: Any, browser: Any) -> None:
    """The public information page (no sign-in), in English and Spanish, passes axe-core too."""
    render = render_public_pages(served_app.store, PublicSettings.from_config({"CRISIS_TIMEZONE": "UTC"}))
    wait_until_served(served_app.url, render)
    context = axe_context(browser, scene)
    page = context.new_page()
    try:
        found: list[str] = []
        for path in ("/public", "/public?lang=es"):
            page.goto(path)
            found += violations_on(page, path)
        assert not found, "\n".join(found)
    finally:
        context.close()
