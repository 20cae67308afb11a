"""Browser-test helpers shared by the page crawl and the axe test: a realistic scene seeded
through the real API, signing in through the real form, and finding every page a role can reach."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from tests.helpers import PASSWORD

#: Links never followed: they end the session or open another one.
NOT_FOLLOWED = re.compile(r"^/(logout|login|share/)")
#: How many pages of one shape (``/manager/scripts/N``) a crawl visits: the same template with
#: other data, so two show its states (a draft, an approved script) without a minute per role.
PAGES_PER_SHAPE = 2
#: How many links away from the navigation a crawl goes.
LINK_DEPTH = 2


@dataclass
class Scene:
    """What the crawl acts on: users of every role, an active event, a pushed script, a line,
    an announcement, complaints, an alert, and a share link."""

    url: str
    tag: str
    users: dict[str, str] = field(default_factory=dict)
    share_url: str = ""
    #: Passwords to try for a role, newest first (a crawl may change one on a password page).
    passwords: dict[str, list[str]] = field(default_factory=dict)


class Api:
    """One user's calls to the JSON API with a bearer token."""

    def __init__(self, base: str, token: str):
        self.base = f"{base}/api/v1"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """Call the API and check the status; return the JSON answer (or None)."""
        response = self.http.request(method, f"{self.base}{path}", json=body)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None


def seed_scene(served_app: Any) -> Scene:
    """Seed a realistic console through the real API; return who and what the crawl uses."""
    tag = uuid.uuid4().hex[:6]
    scene = Scene(served_app.url, tag)
    bootstrap = served_app.make_user("admin")
    admin = Api(served_app.url, served_app.token_for(bootstrap))
    apis: dict[str, Api] = {}
    for key, role, team in (
        ("writer", "manager", ""),
        ("reviewer", "manager", ""),
        ("manager", "manager", ""),
        ("admin", "admin", ""),
        ("agent", "agent", "north"),
        ("stakeholder", "stakeholder", ""),
        ("colleague", "agent", "south"),
    ):
        username = f"{key}-{tag}"
        body = {"username": username, "role": role, "password": PASSWORD, "team": team}
        body["display_name"] = f"{key.title()} {tag}"
        user = admin.call("POST", "/users", body, expect=201)["user"]
        scene.users[key] = username
        if key in ("writer", "reviewer", "manager"):
            apis[key] = Api(served_app.url, served_app.accounts.create_token(username, "crawl", actor="test"))
        assert user["role"] == role
    writer, reviewer = apis["writer"], apis["reviewer"]

    # An active event (declaring it raises the stakeholders' alert) and a draft one to declare.
    event = writer.call(
        "POST",
        "/events",
        {"name": f"Blizzard {tag}", "kind": "winter_storm", "severity": "severe", "areas": ["Dorchester"]},
        expect=201,
    )
    writer.call("POST", f"/events/{event['id']}/declare")
    writer.call(
        "POST", "/events", {"name": f"Heat {tag}", "kind": "extreme_heat", "severity": "moderate"}, expect=201
    )

    # Scripts: approved and pushed, waiting for review (by another manager), and a draft.
    def script(title: str) -> dict[str, Any]:
        body = {"title": f"{title} {tag}", "topic": "Safety", "language": "en", "event_id": event["id"]}
        body["body"] = "Warming centres are **open** until the storm ends."
        return writer.call("POST", "/scripts", body, expect=201)

    approved = script("Warming centres")
    # Notes and a heading in the body: the feed and the library show both (heading order).
    writer.call(
        "PATCH",
        f"/scripts/{approved['id']}",
        {
            "body": "## Where\n\nWarming centres are **open** until the storm ends.",
            "agent_notes": "# Transport\n\nDo not promise a ride; say the bus runs hourly.",
        },
    )
    writer.call("POST", f"/scripts/{approved['id']}/submit")
    reviewer.call("POST", f"/scripts/{approved['id']}/approve")
    reviewer.call("POST", f"/scripts/{approved['id']}/push", {"audience": "all"}, expect=201)
    # Two waiting, so that the crawl finds one still waiting after it approved the other.
    for title in ("Parking ban", "Boil water"):
        waiting = script(title)
        writer.call("POST", f"/scripts/{waiting['id']}/submit")
    script("Trash pickup")

    # A phone line with a live announcement and another waiting for review.
    number = f"+1617555{uuid.uuid4().int % 10_000:04d}"
    route = {"type": "enqueue", "queue": "311-agents"}
    body = {"number": number, "name": f"Storm line {tag}", "route": route, "languages": ["en", "es"]}
    line = admin.call("POST", "/lines", body, expect=201)
    for text in ("Trash collection is suspended until Thursday.", "Shelters are open."):
        body = {"line_id": line["id"], "messages": {"en": text, "es": text}}
        announcement = writer.call("POST", "/announcements", body, expect=201)
        writer.call("POST", f"/announcements/{announcement['id']}/submit")
    reviewer.call("POST", f"/announcements/{announcement['id']}/approve")
    reviewer.call("POST", f"/announcements/{announcement['id']}/activate")

    # Complaints in categories of the event's hazard, so the dashboard has something to show.
    category = writer.call(
        "POST", "/categories", {"name": f"Unplowed street {tag}", "hazards": ["winter_storm"]}, expect=201
    )
    complaints = [{"category": category["code"], "zip": "02124"}] * 6
    writer.call("POST", "/complaints", {"complaints": complaints}, expect=201)

    # An agent's "I keep hearing about…" flag, where the console takes them (issue 11's flags).
    agent = Api(served_app.url, served_app.accounts.create_token(scene.users["agent"], "crawl", actor="test"))
    flag = {"text": f"Downed tree on Elm St {tag}", "zip": "02124"}
    if agent.http.post(f"{agent.base}/flags", json=flag).status_code not in (201, 404, 405):
        raise AssertionError("POST /api/v1/flags refused a valid flag")

    link = apis["manager"].call(
        "POST", "/share-links", {"expires_in": 3600, "label": f"EOC {tag}"}, expect=201
    )
    scene.share_url = link["url"]
    return scene


def sign_in(page: Any, scene: Scene, role: str) -> None:
    """Sign in as the scene's user for ``role`` through the real form (or open the share link).

    The crawl may have changed the password on a password page: the new one is tried first.
    """
    from playwright.sync_api import expect

    if role == "viewer":
        page.goto(scene.share_url)
        expect(page.locator(".role-badge")).to_have_text("viewer", timeout=15_000)
        return
    candidates = scene.passwords.setdefault(role, [PASSWORD])
    for password in list(candidates):
        page.goto(f"{scene.url}/login")
        page.get_by_label("Username").fill(scene.users[role])
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        # Generous: signing in checks a scrypt hash, slow on a busy machine.
        page.locator(".role-badge, .flash--error").first.wait_for(timeout=15_000)
        if page.locator(".role-badge").count():
            scene.passwords[role] = [password]
            break
    expect(page.locator(".role-badge")).to_have_text(role)


def wait_until_live(page: Any) -> None:
    """Wait for the page's live connection, when it has one, to say "Live"."""
    from playwright.sync_api import expect

    status = page.locator("#connection-status")
    if status.count() and status.is_visible():
        expect(status).to_have_text("Live", timeout=15_000)


def shape(path: str) -> str:
    """Return the shape of a path: ``/manager/scripts/12`` → ``/manager/scripts/N``."""
    return re.sub(r"/\d+(?=/|$)", "/N", path)


def page_links(page: Any, base: str) -> list[tuple[str, str, bool]]:
    """Return the page's same-origin links as (path with query, text, in the navigation)."""
    links = page.eval_on_selector_all(
        "a[href]",
        "els => els.map(a => [a.getAttribute('href'), a.textContent.trim(), !!a.closest('nav')])",
    )
    found = []
    for href, text, in_nav in links:
        target = urlsplit(urljoin(page.url, href))
        if f"{target.scheme}://{target.netloc}" != base or href.startswith("#"):
            continue
        found.append((target.path + (f"?{target.query}" if target.query else ""), text, in_nav))
    return found


def follow(page: Any, base: str, path: str) -> tuple[int, str | None]:
    """GET a link with the page's cookies; return its status and the path of the HTML page it
    leads to after redirects (None when it is not an HTML page)."""
    response = page.request.get(f"{base}{path}")
    if not response.ok or "text/html" not in response.headers.get("content-type", ""):
        return response.status, None
    final = urlsplit(response.url)
    return response.status, final.path + (f"?{final.query}" if final.query else "")


def discover_pages(
    page: Any,
    scene: Scene,
    check_link: Callable[[str, str], str | None] | None = None,
    visit: Callable[[str], None] | None = None,
    per_shape: int = PAGES_PER_SHAPE,
) -> list[str]:
    """Visit the role's navigation and the same-origin links on its pages (bounded by shape and
    depth, preferring the scene's own objects); return the HTML pages found, landing page first.

    ``check_link(path, found_on)`` is called once per distinct link and returns the path of the
    HTML page it leads to (after redirects), or None when it is not a page to visit;
    ``visit(path)`` is called on each page once it is live and its links are read.
    """
    start = urlsplit(page.url).path
    pages = [start]
    seen_links: set[str] = {start}
    shapes: dict[str, int] = {shape(start): 1}
    frontier = [(start, 0)]
    while frontier:
        path, depth = frontier.pop(0)
        if page.url != f"{scene.url}{path}":
            page.goto(f"{scene.url}{path}")
        wait_until_live(page)
        links = page_links(page, scene.url)
        if visit:
            visit(path)
        # The scene's own objects first, so the bounded crawl sees them in every state.
        links.sort(key=lambda link: (not link[2], scene.tag not in link[1]))
        for link, _text, in_nav in links:
            if link in seen_links or NOT_FOLLOWED.match(link):
                continue
            seen_links.add(link)
            target = check_link(link, path) if check_link else follow(page, scene.url, link)[1]
            if target is None or (target != link and target in seen_links):
                continue
            link = target
            seen_links.add(link)
            if "?" in link or (depth >= LINK_DEPTH and not in_nav):
                continue
            key = shape(link)
            if shapes.get(key, 0) >= per_shape:
                continue
            shapes[key] = shapes.get(key, 0) + 1
            pages.append(link)
            frontier.append((link, 0 if in_nav else depth + 1))
    return pages
