"""The public information page: what it shows, in whose language, never agent notes, drills
kept off the live page, rendered once per change and answered with ETag/304."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from crisis_console.public import pages
from crisis_console.public.pages import PublicSettings, public_status, render_public_pages
from crisis_console.services.events import Event, Events
from crisis_console.services.scripts import Script, Scripts
from crisis_console.store import Store
from tests.chromium import BROWSER_MARKS
from tests.helpers import wait_until_served

#: Planted in every script's agent notes: it must never reach a public channel.
MARKER = "INTERNAL-MARKER: do not promise a plow time to this caller."
AXE = Path(__file__).resolve().parent.parent / "crisis_console/static/vendor/axe-core/axe.min.js"


@pytest.fixture
def settings(app: Flask) -> PublicSettings:
    """The app's render settings."""
    return PublicSettings.from_config(app.config)


def declare(store: Store, name: str = "Winter Storm Alma", **data: Any) -> Event:
    """Create and declare an event with a hotline, website and shelters."""
    events = Events(store)
    details = {
        "hotline": "(617) 555-0100",
        "website": "boston.gov/snow",
        "shelter_list": "- BCYF Tobin, 1481 Tremont St",
    }
    event = events.create(
        {
            "name": name,
            "kind": "winter_storm",
            "severity": "severe",
            "areas": ["Dorchester"],
            "details": details,
        }
        | data,
        actor="writer",
    )
    return events.declare(event.id, actor="writer")


def approved(store: Store, event: Event, language: str = "en", **data: Any) -> Script:
    """Write, submit and approve (by a second manager) a script for ``event``."""
    scripts = Scripts(store)
    fields = {
        "title": f"Snow emergency ({language})",
        "topic": "Safety",
        "language": language,
        "summary": f"Key message {language}: move cars off snow routes.",
        "body": f"## Parking\n\nBody text {language}.",
        "agent_notes": MARKER,
        "event_id": event.id,
    } | data
    script = scripts.create(fields, actor="writer")
    scripts.act(script.id, "submit", actor="writer")
    return scripts.act(script.id, "approve", actor="reviewer")


def text(client: FlaskClient, path: str, **headers: str) -> str:
    """GET a page and return its text, checking it answered 200."""
    response = client.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def test_the_page_shows_active_events_and_their_key_messages_first(store, client, settings):
    """Hazard, areas, hotline, website and shelters are shown, and each summary comes before the bodies."""
    event = declare(store)
    approved(store, event)
    Events(store).create({"name": "Draft flood", "kind": "flood", "severity": "minor"}, actor="writer")
    render_public_pages(store, settings)
    html = text(client, "/public")
    assert '<html lang="en">' in html
    for shown in ("Winter Storm Alma", "Winter storm", "Dorchester", 'href="tel:6175550100"'):
        assert shown in html
    assert 'href="https://boston.gov/snow"' in html and "BCYF Tobin" in html
    assert html.index("Key message en") < html.index("Body text en")
    assert "Last updated" in html and "<script" not in html
    assert "Draft flood" not in html
    assert text(client, f"/public/{event.id}").count("Key message en") == 1


def test_the_language_is_lang_then_accept_language_with_the_original_as_fallback(store, client, settings):
    """?lang= wins over Accept-Language; a script without a Spanish translation shows its original."""
    event = declare(store)
    english = approved(store, event)
    approved(store, event, "es", translation_of=english.id)
    approved(store, event, title="Trash pickup", summary="Trash pickup is a day late.")
    render_public_pages(store, settings)
    spanish = text(client, "/public", **{"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert '<html lang="es">' in spanish and "Última actualización" in spanish
    assert "Key message es" in spanish and "Key message en" not in spanish
    assert "Trash pickup is a day late." in spanish and "Aún no disponible en español" in spanish
    assert 'href="/public?lang=en"' in spanish  # the switch: plain links
    chosen = text(client, "/public?lang=en", **{"Accept-Language": "es"})
    assert '<html lang="en">' in chosen and "Key message en" in chosen
    assert "Key message es" in text(client, f"/public/{event.id}?lang=es")
    assert "Key message en" in text(client, "/public?lang=xx", **{"Accept-Language": "fr"})
    assert "Key message es" in text(client, "/public?lang=es-MX")


def test_agent_notes_never_appear_on_any_variant(store, client, settings):
    """The marker planted in agent notes is in no page, language or format, nor in the store's render."""
    event = declare(store)
    english = approved(store, event)
    approved(store, event, "es", translation_of=english.id)
    drill = declare(store, "Drill", exercise=True)
    approved(store, drill)
    render_public_pages(store, settings)
    paths = ["/public", "/public.json", f"/public/{event.id}", f"/public/{drill.id}", "/public/99999"]
    for path in paths:
        for lang in ("en", "es"):
            body = client.get(f"{path}?lang={lang}").get_data(as_text=True)
            assert "Key message" in body, path
            assert MARKER not in body and "INTERNAL-MARKER" not in body, (path, lang)
    assert not any("INTERNAL-MARKER" in value for value in store.public.load().values())


def test_drills_are_on_the_live_page_only_when_published(store, client, settings):
    """An unpublished drill is kept off /public and /public.json but shown, marked, on its own page."""
    drill = declare(store, "Drill Zulu", exercise=True)
    approved(store, drill)
    render_public_pages(store, settings)
    assert "Drill Zulu" not in text(client, "/public")
    assert client.get("/public.json").get_json()["events"] == []
    own = text(client, f"/public/{drill.id}")
    assert "EXERCISE" in own and "This is a drill" in own and 'name="robots" content="noindex"' in own
    assert "SIMULACRO" in text(client, f"/public/{drill.id}?lang=es")

    Events(store).update(drill.id, {"publish_drill": True}, actor="writer")
    render_public_pages(store, settings)
    live = text(client, "/public")
    assert "EXERCISE: Drill Zulu" in live
    assert client.get("/public.json").get_json()["events"][0]["exercise"] is True


def test_conditional_requests_are_answered_304(store, client, settings):
    """ETag and Last-Modified come with a short public Cache-Control; a reader who has the page gets 304."""
    approved(store, declare(store))
    render_public_pages(store, settings)
    first = client.get("/public")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert re.fullmatch(r'"[0-9a-f]{24}"', etag)
    assert first.headers["Cache-Control"].startswith("public, max-age=30")
    assert first.headers["Vary"] == "Accept-Language"  # no Cookie: a cache may share it
    assert "Set-Cookie" not in first.headers
    again = client.get("/public", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert client.get("/public", headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get("/public", headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/public?lang=es", headers={"If-None-Match": etag}).status_code == 200
    assert client.head("/public").headers["ETag"] == etag
    render_public_pages(store, settings)  # nothing changed: same bytes, same ETag and time
    assert client.get("/public").headers["ETag"] == etag
    assert client.get("/public").headers["Last-Modified"] == modified


def test_a_newly_approved_version_is_rendered_on_change(store, client, settings, monkeypatch):
    """Approving v2 through the service re-renders at once here (the app's subscriber), and
    another process's copy follows."""
    event = declare(store)
    script = approved(store, event, summary="Version one summary.")
    render_public_pages(store, settings)
    # Another web process: its own copy over the same Redis, not told of the change.
    other_process = pages.PageCache(Store(store.redis, store.keys.prefix), settings)
    other_process.fresh()
    assert "Version one summary." in other_process.pages["all.en.html"].body.decode()
    before = client.get("/public").headers["ETag"]

    scripts = Scripts(store)
    scripts.edit(script.id, {"summary": "Version two summary."}, actor="writer")
    scripts.act(script.id, "submit", actor="writer")
    scripts.act(script.id, "approve", actor="reviewer")

    html = text(client, "/public")
    assert "Version two summary." in html and "Version one summary." not in html
    assert client.get("/public").headers["ETag"] != before
    status = public_status(store)
    assert status["scripts"] == {script.id: 2} and status["events"][event.id]["scripts"] == {script.id: 2}
    assert status["rendered_at"] and status["etag"]
    monkeypatch.setattr(pages, "RECHECK_SECONDS", 0.0)
    assert "Version two summary." in other_process.fresh().pages["all.en.html"].body.decode()


def test_only_changes_the_public_can_see_re_render(store, settings):
    """A draft event's creation or a never-approved script's review renders nothing; the rest do."""
    # A store no subscriber listens to, so that only this test's calls render.
    store = Store(store.redis, f"{store.keys.prefix}:unwired")
    publisher = pages.Publisher(settings)
    event = Events(store).create({"name": "Flood", "kind": "flood", "severity": "minor"}, actor="writer")
    draft = Scripts(store).create({"title": "T", "topic": "Safety", "body": "B"}, actor="writer")
    assert publisher(store, what="created", event=event) is None
    assert publisher(store, what="submitted", script=draft) is None
    assert store.public.render_id() is None
    assert publisher(store, what="declared", event=event) is not None
    live = approved(store, declare(store))
    assert publisher(store, what="edited", script=live) is not None
    assert publisher(store, what="approved", script=draft) is not None


def test_an_empty_install_renders_a_calm_page_on_first_request(store, client):
    """Nothing rendered yet: the first request renders; with no event it says so and where to get help."""
    assert store.public.render_id() is None
    html = text(client, "/public?lang=es")
    assert "No hay ninguna emergencia declarada" in html and "911" in html
    english = text(client, "/public")
    assert "No emergency is declared right now" in english and "call 911" in english
    assert store.public.render_id() is not None
    assert public_status(store)["scripts"] == {}
    assert client.get("/public/12345").status_code == 404


def test_redis_unreachable_serves_the_copy_in_memory(store, client, settings, monkeypatch):
    """A process that lost Redis keeps answering from the last render it has."""
    approved(store, declare(store))
    render_public_pages(store, settings)
    monkeypatch.setattr(pages, "RECHECK_SECONDS", 0.0)

    def down(*_args: Any) -> None:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(store.public, "render_id", down)
    monkeypatch.setattr(store.public, "field", down)
    assert "Key message en" in text(client, "/public")
    assert public_status(store)["etag"]

    newcomer = pages.PageCache(store, settings)  # a process started while Redis is down
    monkeypatch.setattr(pages, "_caches", {store: newcomer})
    response = client.get("/public?lang=es")
    assert response.status_code == 503 and response.headers["Cache-Control"] == "no-store"
    assert "no está disponible" in response.get_data(as_text=True)


def test_the_json_has_events_and_public_messages_only(store, client, settings):
    """The JSON carries the events' facts and each message's public text and version."""
    event = declare(store)
    script = approved(store, event)
    render_public_pages(store, settings)
    response = client.get("/public.json", headers={"Accept-Language": "es"})
    assert response.mimetype == "application/json" and response.headers["ETag"]
    document = json.loads(response.data)
    assert document["language"] == "es" and document["languages"] == ["en", "es"]
    assert document["updated_at"] and document["help"] == {"emergency": "911", "information": "311"}
    (shown,) = document["events"]
    assert shown["id"] == event.id and shown["hazard"] == "Tormenta invernal"
    assert shown["areas"] == ["Dorchester"] and shown["hotline"] == "(617) 555-0100"
    (message,) = shown["messages"]
    assert set(message) == {
        "script_id", "version", "language", "title", "summary", "body", "body_html", "approved_at",
    }  # fmt: skip
    assert message["script_id"] == script.id and message["version"] == 1 and message["language"] == "en"
    assert "<h4>Parking</h4>" in message["body_html"]


def browser_test(test: Any) -> Any:
    """Mark one test as a browser test against the served console (skipped without Chromium)."""
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@browser_test
def test_the_page_reads_on_a_phone_without_javascript_and_passes_axe(served_app, browser):
    """At 360 px with JavaScript off nothing scrolls sideways; printing hides the switch; axe finds nothing."""
    store = served_app.store
    event = declare(store, "Phone-width storm with a rather long name for narrow screens")
    english = approved(
        store, event, body="## Parking\n\n| Route | Rule |\n| --- | --- |\n| Main St | No parking |"
    )
    approved(store, event, "es", translation_of=english.id)
    render = render_public_pages(store, PublicSettings.from_config({"CRISIS_TIMEZONE": "UTC"}))
    wait_until_served(served_app.url, render)
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        page.goto(f"{served_app.url}/public/{event.id}?lang=es")
        assert page.locator("html").get_attribute("lang") == "es"
        assert "Key message es" in page.inner_text("main")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.get_by_role("link", name="English").click()
        assert "Key message en" in page.inner_text("main")
        page.emulate_media(media="print")
        assert not page.locator(".pub-langs").is_visible()
    finally:
        context.close()
    # axe is injected inline, which the page's policy (no script at all) would refuse.
    context = browser.new_context(viewport={"width": 360, "height": 740}, bypass_csp=True)
    try:
        page = context.new_page()
        for path in ("/public", f"/public/{event.id}?lang=es"):
            page.goto(f"{served_app.url}{path}")
            page.add_script_tag(path=str(AXE))
            found = page.evaluate(
                "async () => (await axe.run(document, {resultTypes: ['violations']}))"
                ".violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)"
            )
            assert found == [], (path, found)
    finally:
        context.close()
        # The served console is shared: leave no extra active event in other tests' banners.
        Events(store).stand_down(event.id, actor="writer")
