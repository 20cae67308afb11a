"""The public page's routes, answered from this process's copy of the stored render.

The routes are answered by :class:`FastPath`, a WSGI layer in front of Flask: a request for
the public page then costs no request context, session, sign-in or rate-limit lookup, and
carries no ``Vary: Cookie`` (Flask-Login touches the session after every request, which
would keep a cache in front from sharing the page between readers). The blueprint's views
give the same answers when a request reaches Flask anyway, and declare the routes (the URL
map, the route-role audit).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from flask import Flask, Response, current_app, request
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from crisis_console.extensions import STORE_EXTENSION, limiter
from crisis_console.public import bp
from crisis_console.public.pages import (
    BASE_LANGUAGES,
    Page,
    PublicSettings,
    for_request,
    unavailable_page,
    variant,
)
from crisis_console.store import Store

F = TypeVar("F", bound=Callable[..., Any])
SETTINGS = "crisis_public_settings"
_EVENT_PATH = re.compile(r"^/public/(\d{1,12})$")
_STATUS = {200: "200 OK", 304: "304 Not Modified", 404: "404 Not Found", 503: "503 Service Unavailable"}

#: (status, headers, body) of an answer.
Answer = tuple[int, list[tuple[str, str]], bytes]


def public(view: F) -> F:
    """Mark a route as open to anyone: the public reads it without an account."""
    view.allowed_roles = ("public",)  # type: ignore[attr-defined]  # read by the route audit test
    return view


def own_policy(view: F) -> F:
    """Keep the stored variant's own Content-Security-Policy (it allows the stylesheet inlined
    in it) when a request reaches Flask: Talisman would replace it with the console's."""
    view.talisman_view_options = {"content_security_policy": None}  # type: ignore[attr-defined]
    return view


def init_app(app: Flask) -> None:
    """Register the blueprint, keep the render settings, and put the fast path in front."""
    settings = app.extensions[SETTINGS] = PublicSettings.from_config(app.config)
    app.register_blueprint(bp)
    app.wsgi_app = FastPath(app.wsgi_app, app.extensions[STORE_EXTENSION], settings)  # type: ignore[method-assign]


# --- answering -----------------------------------------------------------------------------


def answer(store: Store, settings: PublicSettings, environ: dict[str, Any], path: str) -> Answer | None:
    """Answer a GET of a public route from the stored render; None if ``path`` is not one."""
    if path == "/public":
        names = (variant("all", "{}"),)
    elif path == "/public.json":
        names = (variant("all", "{}", "json"),)
    else:
        match = _EVENT_PATH.match(path)
        if match is None:
            return None
        names = (variant("event", "{}", event_id=int(match.group(1))), variant("gone", "{}"))
    copy = for_request(store, settings)
    lang = reader_language(
        environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT_LANGUAGE", ""), copy.languages
    )
    page = None
    for name in names:
        page = copy.pages.get(name.replace("{}", lang))
        if page is not None:
            break
    if page is None:
        page = unavailable_page(lang if lang in BASE_LANGUAGES else BASE_LANGUAGES[0])
    if not_modified(page, environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_IF_MODIFIED_SINCE")):
        return 304, page.not_modified_headers, b""
    return page.status, page.headers, page.body


def reader_language(query: str, accept_language: str, available: tuple[str, ...]) -> str:
    """Return ``?lang=`` if the page has it, else the best of Accept-Language, else English."""
    if "lang=" in query:
        asked = dict(parse_qsl(query)).get("lang", "").strip().lower()
        for code in (asked, asked.split("-")[0]):
            if code in available:
                return code
    if not accept_language:
        return available[0]
    return _best_language(accept_language[:200], available)


@functools.lru_cache(maxsize=512)
def _best_language(accept_language: str, available: tuple[str, ...]) -> str:
    """Return the best match of an Accept-Language header (readers send few distinct ones)."""
    return parse_accept_header(accept_language, LanguageAccept).best_match(available) or available[0]


def not_modified(page: Page, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Return whether the reader's copy is current (If-None-Match first, else If-Modified-Since)."""
    if page.status != 200:
        return False
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or page.etag in tags
    if if_modified_since:
        try:
            moment = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return moment.tzinfo is not None and page.modified <= moment
    return False


class FastPath:
    """WSGI layer answering GET and HEAD of the public routes before Flask sees them."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], store: Store, settings: PublicSettings):
        self.wsgi_app = wsgi_app
        self.store = store
        self.settings = settings
        self.take_turns = _turn_taker()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer a public route here; pass everything else on."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if path.startswith("/public") and method in ("GET", "HEAD"):
            found = answer(self.store, self.settings, environ, path)
            if found is not None:
                status, headers, body = found
                start_response(_STATUS[status], headers)
                if self.take_turns is not None:
                    self.take_turns()
                return [b"" if method == "HEAD" else body]
        return self.wsgi_app(environ, start_response)


def _turn_taker() -> Callable[[], None] | None:
    """Return gevent's yield when the process runs on gevent (``serve``), else None.

    An answer from memory never waits on I/O, so under gevent the greenlet of one keep-alive
    connection whose next request has already arrived would answer it, and the next, before
    any other connection got a turn: the median stays tiny while the slowest answers wait for
    whole streaks. Yielding once per answer serves connections in turn.
    """
    try:
        from gevent import monkey, sleep
    except ImportError:  # pragma: no cover - gevent is a pinned dependency
        return None
    return (lambda: sleep(0)) if monkey.is_module_patched("socket") else None


# --- the routes (reached only when the fast path is not in front) ---------------------------


def _respond() -> Response:
    found = answer(
        current_app.extensions[STORE_EXTENSION],
        current_app.extensions[SETTINGS],
        request.environ,
        request.path,
    )
    assert found is not None  # the route matched one of answer's paths
    status, headers, body = found
    return Response(body, status=status, headers=headers)


@bp.get("/public")
@public
@own_policy
@limiter.exempt
def all_events() -> Response:
    """Show every active event (drills only when they are to be published)."""
    return _respond()


@bp.get("/public/<int:event_id>")
@public
@own_policy
@limiter.exempt
def one_event(event_id: int) -> Response:
    """Show one active event (a drill marked EXERCISE); a 404 with current information otherwise."""
    return _respond()


@bp.get("/public.json")
@public
@own_policy
@limiter.exempt
def as_json() -> Response:
    """Return the active events and their public messages as JSON."""
    return _respond()
