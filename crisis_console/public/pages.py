"""The public information page: rendered once per change, stored, served from memory.

:func:`render_public_pages` renders every variant (all events, each event, the page for an
event no longer shown; HTML and JSON; each language) from the store's current state and
stores them with a content hash as ETag. Each web process keeps the stored render in a
:class:`PageCache` and looks at one small Redis field at most every
:data:`RECHECK_SECONDS` to see whether another process rendered since, so a request costs no
Redis read at all, and a page is never staler than that after a change in any process. With
Redis unreachable the last copy in memory is served.

Only ``title``, ``summary`` and ``body`` of a script version are read here
(``services.scripts.PUBLIC_TEXT``): agent notes never reach this module's output.

Plain Python (Jinja2, no Flask), so the worker can re-render after a scheduled expiry.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup
from redis import RedisError

from crisis_console import clock, localtime
from crisis_console.public.strings import STRINGS, chrome_language, strings
from crisis_console.security_headers import public_page_headers, style_hash
from crisis_console.services.events import Event, Events
from crisis_console.services.scripts import Script, Scripts
from crisis_console.store import Store
from scripts_library import languages as language_names
from scripts_library.rendering import render_markdown

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
CSS = Path(__file__).resolve().parent.parent / "static" / "css" / "public.css"
#: Languages every render carries (with their own page chrome), whatever the scripts hold.
BASE_LANGUAGES: tuple[str, ...] = tuple(STRINGS)
#: How long a browser or a cache in front may reuse a page without asking again.
MAX_AGE = 30
CACHE_CONTROL = f"public, max-age={MAX_AGE}, stale-while-revalidate={MAX_AGE}, stale-if-error=86400"
#: How often a process asks Redis whether the page was rendered again elsewhere.
RECHECK_SECONDS = 0.5
#: How long one render may hold the lock, and how long another waits for it.
LOCK_SECONDS = 10
LOCK_WAIT_SECONDS = 5.0
HTML = "text/html; charset=utf-8"
JSON = "application/json"
#: Stand-ins for the "last updated" time while a variant's content is hashed without it.
_UPDATED_ISO = "@@updated-iso@@"
_UPDATED_TEXT = "@@updated-text@@"
_HEADING = re.compile(r"<(/?)h([1-6])>")

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(ROOT / "templates")),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class PublicSettings:
    """What a render needs besides the store: the zone people read times in, the public URL."""

    zone: ZoneInfo
    base_url: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any) -> PublicSettings:
        """Return the settings of an app's config or a :class:`~crisis_console.config.Config`
        (the worker's): ``CRISIS_TIMEZONE`` and ``PUBLIC_BASE_URL``."""

        def get(name: str) -> Any:
            return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)

        return cls(
            zone=localtime.zone(get("CRISIS_TIMEZONE")),
            base_url=(get("PUBLIC_BASE_URL") or "").rstrip("/"),
        )


class Page:
    """One stored variant, with the headers it is always served with."""

    __slots__ = ("body", "etag", "headers", "language", "modified", "not_modified_headers", "status")

    def __init__(self, body: bytes, meta: Mapping[str, Any]):
        self.body = body
        self.etag: str = meta["etag"]
        self.status: int = int(meta.get("status", 200))
        self.language: str = meta["language"]
        #: When the content last changed (whole seconds, as Last-Modified carries it).
        self.modified = clock.parse_iso(meta["updated_at"]).replace(microsecond=0)
        cache_control = "no-store" if self.status >= 500 else CACHE_CONTROL
        self.not_modified_headers = [
            ("ETag", self.etag),
            ("Last-Modified", format_datetime(self.modified, usegmt=True)),
            ("Cache-Control", cache_control),
            ("Vary", "Accept-Language"),
        ]
        self.headers = [
            ("Content-Type", meta["mimetype"]),
            *self.not_modified_headers,
            ("Content-Language", self.language),
            *_security_headers(meta["mimetype"], meta.get("style_sha256")),
            ("Content-Length", str(len(body))),
        ]


@functools.lru_cache(maxsize=16)
def _security_headers(mimetype: str, style: str | None) -> tuple[tuple[str, str], ...]:
    """Return a variant's security headers; its CSP allows the stylesheet it was rendered with."""
    return tuple(public_page_headers(mimetype, style_source=style or style_hash(_css())))


def variant(kind: str, language: str, fmt: str = "html", event_id: int | None = None) -> str:
    """Return a variant's name: ``all.en.html``, ``event.3.es.html``, ``gone.en.html``, ``all.es.json``."""
    return f"event.{event_id}.{language}.{fmt}" if kind == "event" else f"{kind}.{language}.{fmt}"


# --- rendering ---------------------------------------------------------------------------


def render_public_pages(store: Store, settings: PublicSettings) -> dict[str, Any]:
    """Render every variant of the public page from the store's state, store it, and return
    its status (as :func:`public_status`).

    Renders take turns (a Redis lock), and each reads the state after taking its turn, so
    the last render stored always shows the latest change, whichever process made it.

    Raises:
        redis.RedisError: Redis is unreachable (the copies already in memory stay served).
    """
    token = uuid.uuid4().hex
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not store.public.lock(token, LOCK_SECONDS):
        if time.monotonic() > deadline:  # a renderer died holding it: render anyway
            break
        time.sleep(0.02)
    try:
        fields = _render(store, settings, json.loads(store.public.field("_meta") or "{}"))
        store.public.save(fields)
    finally:
        store.public.unlock(token)
    cache_for(store, settings).install(fields)
    return _status_from(fields.get("_status"))


def _render(store: Store, settings: PublicSettings, previous: Mapping[str, Any]) -> dict[str, str]:
    """Return the hash fields of a new render (see ``Keys.public_pages``)."""
    now = clock.now()
    events = Events(store).active()
    groups = _message_groups(store, {e.id for e in events}, now)
    extra = {lang for by_event in groups.values() for group in by_event for lang in group}
    page_languages = [*BASE_LANGUAGES, *sorted(extra - set(BASE_LANGUAGES))]
    live = [e for e in events if not e.exercise or e.publish_drill]
    pages: dict[str, tuple[str, str, str, int]] = {}  # name -> (text, mimetype, language, status)
    shown: dict[int, dict[str, int]] = {}
    for lang in page_languages:
        views = {e.id: _event_view(e, groups.get(e.id, []), lang, settings) for e in events}
        for view in views.values():
            shown.setdefault(view["id"], {}).update(
                {str(m["script_id"]): m["version"] for m in view["messages"]}
            )
        listed = [views[e.id] for e in live]
        common = {"lang": lang, "languages": page_languages}
        pages[variant("all", lang)] = (
            _html(kind="all", path="/public", events=listed, **common),
            HTML,
            lang,
            200,
        )
        pages[variant("gone", lang)] = (
            _html(kind="gone", path="/public", events=listed, **common),
            HTML,
            lang,
            404,
        )
        for event in events:
            pages[variant("event", lang, event_id=event.id)] = (
                _html(kind="event", path=f"/public/{event.id}", events=[views[event.id]], **common),
                HTML,
                lang,
                200,
            )
        pages[variant("all", lang, "json")] = (_json(listed, lang, page_languages, settings), JSON, lang, 200)

    rendered_at = clock.iso(now)
    style = style_hash(_css())  # the stylesheet these variants inline, for their CSP
    fields: dict[str, str] = {}
    meta: dict[str, dict[str, Any]] = {}
    for name, (text, mimetype, lang, status) in pages.items():
        content_hash = hashlib.sha256(text.encode()).hexdigest()
        before = previous.get(name) or {}
        updated_at = before["updated_at"] if before.get("hash") == content_hash else rendered_at
        final = text.replace(_UPDATED_ISO, updated_at).replace(
            _UPDATED_TEXT, localtime.format_time(updated_at, settings.zone)
        )
        etag = '"' + hashlib.sha256(final.encode()).hexdigest()[:24] + '"'
        fields[name] = final
        meta[name] = {
            "etag": etag,
            "hash": content_hash,
            "updated_at": updated_at,
            "mimetype": mimetype,
            "language": lang,
            "status": status,
        }
        if mimetype == HTML:
            meta[name]["style_sha256"] = style
    main = meta[variant("all", BASE_LANGUAGES[0])]
    scripts = {sid: version for per_event in shown.values() for sid, version in per_event.items()}
    status_record = {
        "rendered_at": rendered_at,
        "updated_at": main["updated_at"],
        "etag": main["etag"],
        "scripts": scripts,
        "events": {str(eid): {"scripts": per_event} for eid, per_event in shown.items()},
        "languages": page_languages,
    }
    fields["_meta"] = json.dumps(meta)
    fields["_status"] = json.dumps(status_record)
    fields["_render"] = f"{rendered_at} {uuid.uuid4().hex[:12]}"
    return fields


#: A translation group's current public messages, by language.
Group = dict[str, dict[str, Any]]


def _message_groups(store: Store, event_ids: set[int], now: datetime) -> dict[int, list[Group]]:
    """Return, per active event, its approved current scripts grouped by translation, newest
    changed first; each message holds public text only."""
    scripts: list[Script] = [
        s for s in Scripts(store).list() if s.event_id in event_ids and s.is_current(now)
    ]
    versions = store.scripts.many_versions([(s.id, s.live_version) for s in scripts])  # type: ignore[misc]
    by_event: dict[int, dict[int, Group]] = {}
    for script, version in zip(scripts, versions, strict=True):
        if not version:
            continue
        group = by_event.setdefault(script.event_id, {}).setdefault(script.group_id, {})  # type: ignore[arg-type]
        group[script.language] = {
            "script_id": script.id,
            "version": int(version["version"]),
            "language": script.language,
            "original": script.id == script.group_id,
            "title": version.get("title", ""),
            "summary": version.get("summary", ""),
            "body": version.get("body", ""),
            "approved_at": version.get("updated_at", ""),
        }
    return {event_id: list(groups.values()) for event_id, groups in by_event.items()}


def _pick(group: Group, language: str) -> dict[str, Any]:
    """Return the group's message in ``language``, else its original, else English, else any."""
    if language in group:
        return group[language]
    originals = [m for m in group.values() if m["original"]]
    return originals[0] if originals else group.get("en") or next(iter(group.values()))


def _demote(html: str) -> str:
    """Shift a script's headings below the page's own (h1 page, h2 event, h3 script): its
    highest becomes h4, so no level is skipped."""
    levels = [int(level) for _slash, level in _HEADING.findall(html)]
    if not levels:
        return html
    shift = 4 - min(levels)
    return _HEADING.sub(lambda m: f"<{m.group(1)}h{max(4, min(6, int(m.group(2)) + shift))}>", html)


def _event_view(event: Event, groups: list[Group], language: str, settings: PublicSettings) -> dict[str, Any]:
    """Return what the page and the JSON say about one event, in ``language``."""
    text = strings(language)
    messages = []
    for group in groups:
        message = dict(_pick(group, language))
        message["body_html"] = Markup(_demote(render_markdown(message["body"])))  # sanitised by nh3
        message["other_language"] = message["language"] != language
        messages.append(message)
    details = event.details
    hotline = (details.get("hotline") or "").strip()
    digits = re.sub(r"[^\d+]", "", hotline)
    website = (details.get("website") or "").strip()
    shelters = (details.get("shelter_list") or "").strip()
    return {
        "id": event.id,
        "name": event.name,
        "kind": event.kind,
        "hazard": text["hazards"].get(event.kind, text["hazards"]["other"]),
        "severity": event.severity,
        "severity_label": text["severities"].get(event.severity, event.severity),
        "exercise": event.exercise,
        "listed": not event.exercise or event.publish_drill,
        "areas": list(event.areas),
        "declared_at": event.declared_at,
        "declared_text": localtime.format_time(event.declared_at, settings.zone),
        "hotline": hotline,
        "hotline_href": f"tel:{digits}" if len(digits) >= 3 else "",
        "website": website,
        "website_href": _web_link(website),
        "shelters": shelters,
        "shelters_html": Markup(_demote(render_markdown(shelters))) if shelters else "",
        "url": f"/public/{event.id}",
        "messages": messages,
    }


def _web_link(website: str) -> str:
    """Return a link for an event's website ("" when it does not look like one)."""
    if re.match(r"^https?://\S+$", website):
        return website
    if re.match(r"^[\w-]+(\.[\w-]+)+(/\S*)?$", website):
        return f"https://{website}"
    return ""


def _css() -> Markup:
    """Return the page's stylesheet, inlined so a visitor needs one request (our own file)."""
    return Markup(CSS.read_text(encoding="utf-8"))


def _html(*, kind: str, path: str, events: list[dict[str, Any]], lang: str, languages: list[str]) -> str:
    """Render one HTML variant (its "last updated" left as stand-ins)."""
    return _templates.get_template("public/page.html").render(
        kind=kind,
        path=path,
        events=events,
        lang=lang,
        chrome_lang=chrome_language(lang),
        s=strings(lang),
        switch=[(code, language_names.name(code)) for code in languages],
        updated_iso=_UPDATED_ISO,
        updated_text=_UPDATED_TEXT,
        css=_css(),
    )


def _json(events: list[dict[str, Any]], lang: str, languages: list[str], settings: PublicSettings) -> str:
    """Render the JSON variant: the listed events and their public messages."""
    base = settings.base_url
    document = {
        "language": lang,
        "languages": languages,
        "updated_at": _UPDATED_ISO,
        "url": f"{base}/public?lang={lang}",
        "help": {"emergency": "911", "information": "311"},
        "events": [
            {
                "id": e["id"],
                "name": e["name"],
                "kind": e["kind"],
                "hazard": e["hazard"],
                "severity": e["severity"],
                "exercise": e["exercise"],
                "areas": e["areas"],
                "declared_at": e["declared_at"],
                "hotline": e["hotline"],
                "website": e["website"],
                "shelters": e["shelters"],
                "url": f"{base}{e['url']}?lang={lang}",
                "messages": [
                    {
                        "script_id": m["script_id"],
                        "version": m["version"],
                        "language": m["language"],
                        "title": m["title"],
                        "summary": m["summary"],
                        "body": m["body"],
                        "body_html": str(m["body_html"]),
                        "approved_at": m["approved_at"],
                    }
                    for m in e["messages"]
                ],
            }
            for e in events
        ],
    }
    return json.dumps(document, ensure_ascii=False)


@functools.lru_cache(maxsize=8)
def unavailable_page(language: str) -> Page:
    """Return the calm page served when nothing was ever rendered and Redis cannot be reached
    (made once per language: a surge must not render it per request)."""
    now = clock.iso()
    text = _html(kind="unavailable", path="/public", events=[], lang=language, languages=[language])
    text = text.replace(_UPDATED_ISO, now).replace(_UPDATED_TEXT, now)
    meta = {"etag": '"unavailable"', "updated_at": now, "mimetype": HTML, "language": language, "status": 503}
    return Page(text.encode(), meta)


# --- status --------------------------------------------------------------------------------


def public_status(store: Store) -> dict[str, Any]:
    """Return what the public page carries now: ``{"rendered_at", "etag", "scripts":
    {script_id: version}, "events": {event_id: {"scripts": {...}}}}`` (None and {} before the
    first render). From this process's copy when Redis is unreachable."""
    try:
        raw = store.public.field("_status")
    except RedisError:
        cache = _caches.get(store)
        raw = cache.status if cache else None
    return _status_from(raw)


def _status_from(raw: str | None) -> dict[str, Any]:
    record = json.loads(raw) if raw else {}
    return {
        "rendered_at": record.get("rendered_at"),
        "updated_at": record.get("updated_at"),
        "etag": record.get("etag"),
        "scripts": {int(sid): version for sid, version in record.get("scripts", {}).items()},
        "events": {
            int(eid): {"scripts": {int(s): v for s, v in shown["scripts"].items()}}
            for eid, shown in record.get("events", {}).items()
        },
    }


# --- wiring ----------------------------------------------------------------------------------


class Publisher:
    """Re-render the public page for a store: ``Publisher(settings)(store)``, the shape of the
    subscribers' publishers (``crisis_console.subscribers``)."""

    def __init__(self, settings: PublicSettings):
        self.settings = settings

    def __call__(self, store: Store, **change: Any) -> dict[str, Any] | None:
        """Render every variant again; given a domain signal's ``what`` and record, only when
        the change can alter what the public reads (None when it was skipped)."""
        if change and not shows_on_page(change):
            return None
        return render_public_pages(store, self.settings)


def shows_on_page(change: Mapping[str, Any]) -> bool:
    """Return whether a signalled change can alter the page: not a draft event's creation,
    nor a script's writing or review while no approved version of it is live."""
    what = change.get("what")
    if "event" in change:
        return what != "created"
    script = change.get("script")
    if script is not None and what in ("created", "edited", "submitted", "returned"):
        # An approved script's edit is a new draft (the live text is unchanged) but may move
        # it to another event or change its expiry.
        return what == "edited" and script.live_version is not None
    return True


def publisher(config: Mapping[str, Any] | Any) -> Publisher:
    """Return the public page's publisher for :class:`crisis_console.subscribers.Subscribers`
    (called with the store after each change), from the app's config or the worker's
    settings (``CRISIS_TIMEZONE``, ``PUBLIC_BASE_URL``)."""
    return Publisher(PublicSettings.from_config(config))


# --- the per-process copy --------------------------------------------------------------------


class PageCache:
    """This process's copy of the stored render of one store."""

    def __init__(self, store: Store, settings: PublicSettings):
        self._store = store
        self.settings = settings
        self.pages: dict[str, Page] = {}
        self.languages: tuple[str, ...] = BASE_LANGUAGES
        self.render_id: str | None = None
        self.status: str | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._redis_down = False

    def install(self, fields: Mapping[str, str]) -> None:
        """Take a stored render as this process's copy (ignored if empty)."""
        if not fields.get("_render"):
            return
        meta = json.loads(fields["_meta"])
        pages = {name: Page(fields[name].encode(), info) for name, info in meta.items() if name in fields}
        status = fields.get("_status")
        self.languages = (
            tuple(json.loads(status).get("languages", BASE_LANGUAGES)) if status else BASE_LANGUAGES
        )
        self.pages, self.status, self.render_id = pages, status, fields["_render"]
        self._checked = time.monotonic()

    def fresh(self) -> PageCache:
        """Return self, after bringing the copy up to date if it was not checked lately.

        One request at a time checks; the others meanwhile serve the copy they have (or
        wait for it when there is none yet). Nothing stored: render now (a fresh install, or
        Redis lost its data). Redis unreachable: keep serving the copy in memory.
        """
        if time.monotonic() - self._checked < RECHECK_SECONDS:
            return self
        # Wait for the check only with nothing to serve and Redis not known to be down.
        if not self._lock.acquire(blocking=not self.pages and not self._redis_down):
            return self
        try:
            if time.monotonic() - self._checked < RECHECK_SECONDS:
                return self
            try:
                render_id = self._store.public.render_id()
                if render_id is None:
                    render_public_pages(self._store, self.settings)
                elif render_id != self.render_id:
                    self.install(self._store.public.load())
                if self._redis_down:
                    log.warning("public page: Redis answers again")
                self._redis_down = False
            except RedisError:
                if not self._redis_down:
                    log.warning("public page: Redis unreachable, serving the copy in memory", exc_info=True)
                self._redis_down = True
            self._checked = time.monotonic()
        finally:
            self._lock.release()
        return self


_caches: weakref.WeakKeyDictionary[Store, PageCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(store: Store, settings: PublicSettings) -> PageCache:
    """Return this process's copy of ``store``'s public page (made on first use)."""
    cache = _caches.get(store)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(store)
            if cache is None:
                cache = _caches[store] = PageCache(store, settings)
    return cache


def for_request(store: Store, settings: PublicSettings) -> PageCache:
    """Return the up-to-date copy to answer a request from."""
    return cache_for(store, settings).fresh()
