"""The page crawl: for every role, a real browser visits every page it can reach, presses every
button, submits every form with valid input, and fails on console errors, failed requests, broken
links and buttons that do nothing.

Nothing here names today's buttons: pages come from each role's navigation and links, buttons and
fields from the DOM. A button is told apart from its copies by its text and the form it submits
(``Push`` on every script row is one button), so a new button is pressed as soon as it exists, and
one with no handler fails the crawl.

How a press is judged: the page is opened afresh (signed in again if a press ended the session),
the press's form is filled, and from the press until the page is quiet again (no request in flight,
a frame drawn) the crawl records, inside the page, DOM mutations, changed field values, focus or
scroll, ``fetch``/XHR/WebSocket sends and calls such as ``print()``; and, from Playwright, every
request and navigation. A press that sends nothing and changes nothing is dead; so is a form that
merely reloads the same page unchanged (a form whose script is not loaded submits to itself).

Run with ``-s`` to see each press and what made it count; ``CRAWL_DEBUG=1`` also prints how a
reloaded page's text differed.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browsing import (
    Scene,
    discover_pages,
    follow,
    shape,
    sign_in,
    wait_until_live,
)
from tests.chromium import BROWSER_MARKS
from tests.helpers import PASSWORD

pytestmark = BROWSER_MARKS

ROLES = ["agent", "stakeholder", "viewer", "manager", "admin"]

#: Requests allowed to fail, as (method, path pattern, status, why). Each entry names the issue
#: item that removes it; the list should be empty.
ALLOWED_FAILURES: list[tuple[str, str, int, str]] = []
#: Buttons allowed to do nothing, as (page shape, button text pattern, why). Keep it empty.
ALLOWED_DEAD: list[tuple[str, str, str]] = []
#: How many links of one shape (``/manager/scripts/N``) are checked on one role's pages.
LINKS_PER_SHAPE = 4
#: Most presses one role's crawl makes, so that a page growing without bound cannot hang it.
MAX_PRESSES = 150

#: A live panel may redraw between marking a button and pressing it: mark it again this often.
REMARK_ATTEMPTS = 3
#: Milliseconds a press waits for its button (gone at once if a redraw took the marker away).
PRESS_TIMEOUT_MS = 20_000
PRESSABLE = "button, input[type=submit], input[type=button], input[type=reset], summary, [role=button]"

# Installed in every document before its scripts run: records what a press may cause besides
# requests and DOM changes, and takes snapshots of what the user sees.
INSTRUMENT_JS = r"""
(() => {
  if (window.__ccCrawl) { return; }
  const activity = [];
  const note = (kind) => activity.push(kind);
  const wrap = (owner, name, kind, ignore) => {
    const original = owner && owner[name];
    if (typeof original !== "function") { return; }
    owner[name] = function (...args) {
      if (!ignore || !ignore(args)) { note(kind); }
      return original.apply(this, args);
    };
  };
  wrap(window, "fetch", "fetch");
  wrap(XMLHttpRequest.prototype, "send", "xhr");
  // Engine.IO's own pings, pongs and probes are the connection, not something a press sent.
  wrap(WebSocket.prototype, "send", "websocket", (args) => typeof args[0] === "string" && !/^4[23]/.test(args[0]));
  wrap(window, "print", "print");
  wrap(window, "open", "open");
  wrap(window, "alert", "alert");
  if (window.Clipboard) { wrap(Clipboard.prototype, "writeText", "clipboard"); }
  if (window.SpeechSynthesis) { wrap(SpeechSynthesis.prototype, "speak", "speech"); }
  wrap(HTMLMediaElement.prototype, "play", "media");
  wrap(HTMLFormElement.prototype, "submit", "form-submit");
  const snapshot = () => {
    const target = document.querySelector("[data-crawl-target]");
    const active = document.activeElement;
    const focus = !active || active === document.body || active === target ? "" :
      active.tagName + "#" + active.id + "." + active.className;
    const fields = Array.from(document.querySelectorAll("input, select, textarea"))
      .map((el) => el.type === "checkbox" || el.type === "radio" ? String(el.checked) : el.value);
    const dialogs = Array.from(document.querySelectorAll("dialog")).map((d) => d.open);
    return JSON.stringify([location.href, focus, fields, dialogs, window.scrollX, window.scrollY]);
  };
  window.__ccCrawl = { activity, snapshot };
})();
"""

SIGNATURE_JS = r"""
const norm = (s) => (s || "").replace(/\d+/g, "N").replace(/\s+/g, " ").trim();
const signature = (el) => {
  const form = el.form || el.closest("form");
  let text = norm(el.getAttribute("aria-label") || el.innerText || el.value || el.title);
  // A button with an id is that button whatever it says now ("Sound on" / "Sound off"), and a
  // disclosure's summary names its content (a script's title): one per kind of disclosure.
  if (el.id) {
    text = "#" + norm(el.id);
  } else if (el.tagName === "SUMMARY") {
    const holder = el.parentElement.closest("[id]");
    text = "details." + norm(el.parentElement.className) + " in #" + norm(holder ? holder.id : "");
  }
  let where = "";
  if (form) {
    // Any path segment with a digit is an id (/users/12, /tokens/8e56a2): one button per route.
    const action = (form.getAttribute("data-api-url") || form.getAttribute("action") || "(same page)")
      .replace(/\/[^/?]*\d[^/?]*/g, "/N");
    const method = form.getAttribute("data-api-method") || form.getAttribute("method") ||
      (form.hasAttribute("data-api-url") ? "post" : "get");
    where = norm(action) + " " + method.toUpperCase();
  }
  return [el.tagName.toLowerCase(), text, where].join(" | ");
};
const visible = (el) => {
  const box = el.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && el.checkVisibility({ visibilityProperty: true, opacityProperty: true });
};
// The scene's own rows first (the second user, then anything the scene made), then the first.
const rank = (el, prefer) => {
  const row = el.closest("tr, li, dialog, [role=dialog]");
  const text = row ? row.textContent : "";
  const i = prefer.findIndex((p) => text.includes(p));
  return i < 0 ? prefer.length : i;
};
const instances = (sig, prefer) => Array.from(document.querySelectorAll(SELECTOR))
  .filter((el) => visible(el) && !el.disabled && signature(el) === sig)
  .sort((a, b) => rank(a, prefer) - rank(b, prefer));
"""

COLLECT_JS = (
    "([SELECTOR, prefer]) => {"
    + SIGNATURE_JS
    + r"""
  const seen = new Map();
  document.querySelectorAll(SELECTOR).forEach((el) => {
    if (!visible(el) || el.disabled) { return; }
    const sig = signature(el);
    if (seen.has(sig)) { return; }
    const chrome = !!el.closest("body > header, body > footer, body > nav");
    const label = (el.getAttribute("aria-label") || el.innerText || el.value || "").trim().slice(0, 60);
    seen.set(sig, { sig, chrome, label });
  });
  return Array.from(seen.values());
}"""
)

MARK_JS = (
    "([SELECTOR, sig, prefer]) => {"
    + SIGNATURE_JS
    + r"""
  document.querySelectorAll("[data-crawl-target]").forEach((el) => el.removeAttribute("data-crawl-target"));
  const [el] = instances(sig, prefer);
  if (!el) { return null; }
  el.setAttribute("data-crawl-target", "1");
  const form = el.form;
  const submits = form && (el.type === "submit" || el.type === "image");
  const fields = [];
  if (submits) {
    Array.from(form.elements).forEach((f, i) => {
      if (!f.name && !f.id) { return; }
      if (f.type === "hidden" || f.disabled || f.readOnly || !visible(f)) { return; }
      if (["submit", "button", "reset", "image", "file", "radio"].includes(f.type)) { return; }
      f.setAttribute("data-crawl-field", String(i));
      const options = f.tagName === "SELECT" ? Array.from(f.options).map((o) => o.value) : [];
      const list = f.list ? Array.from(f.list.options).map((o) => o.value).filter(Boolean) : [];
      fields.push({ index: i, tag: f.tagName.toLowerCase(), type: f.type, value: f.value,
        autocomplete: f.getAttribute("autocomplete") || "",
        checked: !!f.checked, required: f.required, placeholder: f.placeholder || "",
        options, list, min: f.min || "", minlength: f.minLength });
    });
  }
  return { fields };
}"""
)

START_JS = r"""() => {
  const state = window.__ccCrawl;
  if (document.activeElement && document.activeElement !== document.body) { document.activeElement.blur(); }
  state.mark = state.activity.length;
  state.mutations = [];
  state.observer = new MutationObserver((records) => {
    for (const r of records) {
      const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (node && node.closest && node.closest("#connection-status")) { continue; }
      if (r.type === "attributes" && /^data-crawl/.test(r.attributeName)) { continue; }
      state.mutations.push(r.type);
    }
  });
  state.observer.observe(document.documentElement,
    { subtree: true, childList: true, attributes: true, characterData: true });
  state.before = state.snapshot();
}"""

RESULT_JS = r"""() => {
  const state = window.__ccCrawl;
  if (!state || state.mark === undefined) { return null; }
  state.observer.takeRecords().forEach(() => state.mutations.push("late"));
  state.observer.disconnect();
  return { activity: state.activity.slice(state.mark), mutations: state.mutations.length,
    changed: state.snapshot() !== state.before };
}"""

# One frame drawn and the task queue run once: what the page does in answer to an event is done.
QUIET_JS = "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)))"


def normal(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Return a URL's path and sorted query, so ``/a?`` and ``/a`` compare equal."""
    parts = urlsplit(url)
    return parts.path, tuple(sorted(parse_qsl(parts.query)))


def allowed_failure(method: str, url: str, status: int) -> bool:
    """Say whether a failed request is on the allowlist."""
    path = urlsplit(url).path
    return any(m == method and re.search(p, path) and s == status for m, p, s, _why in ALLOWED_FAILURES)


@dataclass
class Tracker:
    """Everything the browser reports: requests in flight, navigations and problems."""

    where: str = "signing in"
    in_flight: set[Any] = field(default_factory=set)
    requests: list[Any] = field(default_factory=list)
    navigations: int = 0
    problems: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        """Listen to the page's requests, console and errors."""
        page.on("request", self._request)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._done)
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"{self.where}: page error {error}"))
        page.on("framenavigated", self._navigated)
        # confirm() and prompt() answered yes, as the user pressing the button means it.
        page.on("dialog", lambda dialog: dialog.accept())

    def _request(self, request: Any) -> None:
        """Count a request (the live connection's own traffic aside)."""
        if "/socket.io/" in request.url:
            return
        self.in_flight.add(request)
        self.requests.append((request, self.navigations))

    def _done(self, request: Any) -> None:
        """Forget a request that finished or failed."""
        self.in_flight.discard(request)

    def _response(self, response: Any) -> None:
        """Record a 4xx or 5xx answer that is not on the allowlist."""
        method = response.request.method
        if response.status >= 400 and not allowed_failure(method, response.url, response.status):
            self.problems.append(f"{self.where}: {method} {response.url} answered {response.status}")

    def _console(self, message: Any) -> None:
        """Record a console error (a failed request already recorded aside)."""
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and url:
            return  # the response listener judges the request itself
        self.problems.append(f"{self.where}: console error {message.text!r} at {url}")

    def _navigated(self, frame: Any) -> None:
        """Count navigations of the main frame."""
        if frame.parent_frame is None:
            self.navigations += 1


def settle(page: Any, tracker: Tracker) -> None:
    """Wait until no request is in flight and the page has drawn a frame with nothing new asked."""
    quiet = 0
    for _ in range(2000):
        count, navigations = len(tracker.requests), tracker.navigations
        try:
            page.wait_for_load_state("load")
            page.evaluate(QUIET_JS)
        except PlaywrightError:
            quiet = 0
            continue  # the document changed under us: wait on the new one
        calm = not tracker.in_flight and len(tracker.requests) == count and tracker.navigations == navigations
        quiet = quiet + 1 if calm else 0
        # Twice in a row, so that work chained on a response (render, then reload) has begun.
        if quiet == 2:
            return
    raise AssertionError(f"{tracker.where}: requests never finished: {tracker.in_flight}")


def value_for(spec: dict[str, Any]) -> str | None:
    """Pick a valid value for an empty field from its type, list, placeholder or requirement."""
    kind, placeholder, required = spec["type"], spec["placeholder"], spec["required"]
    token = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    phone = f"+1617555{random.randrange(10_000):04d}"
    usable = placeholder and not re.search(r"…|\.\.\.|^(type|search)", placeholder, re.IGNORECASE)
    if kind == "password":
        return PASSWORD
    if kind == "email":
        return f"crawl-{token}@example.org"
    if kind == "tel":
        return phone
    if kind == "number":
        return spec["min"] or "1"
    if kind == "url":
        return "https://example.org/crawl"
    if kind in ("date", "datetime-local", "time", "month", "week"):
        if not required:
            return None
        soon = datetime.now() + timedelta(hours=1)
        formats = {"date": "%Y-%m-%d", "datetime-local": "%Y-%m-%dT%H:%M", "time": "%H:%M"}
        formats |= {"month": "%Y-%m", "week": "%G-W%V"}
        return soon.strftime(formats[kind])
    if kind == "search":
        return None
    if spec["list"]:
        return spec["list"][0]
    if usable:
        # A phone number given as the example is made unique: numbers are often unique keys.
        return phone if re.fullmatch(r"\+\d{8,15}", placeholder) else placeholder
    if required or spec["tag"] == "textarea":
        words = f"crawl-{token}"
        return f"{words}: checked by the page crawl." if spec["tag"] == "textarea" else words
    return None


def fill(page: Any, fields: list[dict[str, Any]], passwords: list[str]) -> None:
    """Fill a form's fields as a user would, keeping what the page already put in them.

    A form asking for the current password (changing one's own) gets the user's password there
    and a new one in its new-password fields; ``passwords`` gets the new one first, to sign in.
    """
    own = any(spec.get("autocomplete") == "current-password" for spec in fields)
    new_password = f"{PASSWORD} {random.randrange(10_000)}"
    # Selects offering the same choices (merge this category into that one) get different ones.
    chosen: dict[tuple[str, ...], set[str]] = {}
    for spec in fields:
        field_locator = page.locator(f'[data-crawl-field="{spec["index"]}"]')
        if spec["tag"] == "select":
            used = chosen.setdefault(tuple(spec["options"]), set())
            choices = [v for v in spec["options"] if v and v not in used]
            value = spec["value"] if spec["value"] and spec["value"] not in used else next(iter(choices), "")
            if value and value != spec["value"]:
                field_locator.select_option(value)
            used.add(value)
        elif spec["type"] == "checkbox":
            if not spec["checked"]:
                field_locator.check()
        elif own and spec["type"] == "password":
            current = spec["autocomplete"] == "current-password"
            field_locator.fill(passwords[0] if current else new_password)
        elif not spec["value"]:
            value = value_for(spec)
            if value is not None:
                field_locator.fill(value)
    if own:
        passwords.insert(0, new_password)


@dataclass
class Crawl:
    """One role's crawl: its page, the scene, and what it found."""

    page: Any
    scene: Scene
    role: str
    tracker: Tracker
    prefer: list[str]
    pressed: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    missed: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    presses: int = 0
    reloaded: bool = False
    log: list[str] = field(default_factory=list)

    def open_clean(self, path: str, *, opened: bool = False) -> str:
        """Open ``path`` afresh (unless just ``opened``), signing in again if the session ended;
        return its main text."""
        for _ in range(2):
            if not opened:
                self.page.goto(f"{self.scene.url}{path}")
            opened = False
            if urlsplit(self.page.url).path != "/login" and "/share/" not in self.page.url:
                break
            sign_in(self.page, self.scene, self.role)
        assert urlsplit(self.page.url).path == urlsplit(path).path, f"{path} opened {self.page.url}"
        wait_until_live(self.page)
        settle(self.page, self.tracker)
        return self.page.evaluate("() => (document.querySelector('main') || document.body).innerText")

    def collect(self) -> list[dict[str, Any]]:
        """Return the distinct pressable elements visible now."""
        return self.page.evaluate(COLLECT_JS, [PRESSABLE, self.prefer])

    def press(self, sig: str, judged: bool = False) -> tuple[int, int] | None:
        """Fill the element's form and press it; return the request and navigation counts before
        the click (None if the element is not on the page). ``judged`` starts the recording."""
        for attempt in range(REMARK_ATTEMPTS):
            marked = self.page.evaluate(MARK_JS, [PRESSABLE, sig, self.prefer])
            if marked is None:
                return None
            try:
                fill(self.page, marked["fields"], self.scene.passwords.setdefault(self.role, [PASSWORD]))
                if judged:
                    # Scrolled to first, so that the click's own scrolling is not taken for an effect.
                    self.page.locator("[data-crawl-target]").scroll_into_view_if_needed(
                        timeout=PRESS_TIMEOUT_MS
                    )
                    self.page.evaluate(START_JS)
                counts = len(self.tracker.requests), self.tracker.navigations
                self.page.locator("[data-crawl-target]").click(timeout=PRESS_TIMEOUT_MS)
            except PlaywrightError as exc:
                # A live panel redrew itself (a socket event, a planned refetch) between the
                # marking and the press: mark the element again in the new markup.
                redrawn = "not attached" in str(exc) or not self.page.locator("[data-crawl-target]").count()
                if not redrawn or attempt == REMARK_ATTEMPTS - 1:
                    raise
                settle(self.page, self.tracker)
                continue
            settle(self.page, self.tracker)
            return counts
        return None

    def judge(
        self, path: str, steps: tuple[str, ...], label: str, clean_text: str
    ) -> list[dict[str, Any]] | None:
        """Press ``steps`` from a clean page and judge the last press; return the buttons it
        revealed, or None if a button of ``steps`` is not on the page."""
        self.reloaded = False
        for sig in steps[:-1]:
            if self.press(sig) is None:
                return None
        before = {item["sig"] for item in self.collect()}
        start_url = self.page.url
        counts = self.press(steps[-1], judged=True)
        if counts is None:
            return None
        requests, navigations = counts
        self.presses += 1
        result = None
        if self.tracker.navigations == navigations:
            try:
                result = self.page.evaluate(RESULT_JS)
            except PlaywrightError:  # a navigation began after the page looked quiet
                settle(self.page, self.tracker)
        if self.tracker.navigations != navigations:
            result = None
        sent = self.tracker.requests[requests:]
        if result is not None:
            why = [*result["activity"], *(["DOM changed"] if result["mutations"] else [])]
            why += [*(["fields, focus or scroll changed"] if result["changed"] else [])]
            why += [f"{r.method} {urlsplit(r.url).path}" for r, _n in sent]
        else:
            if not self.role_signed_out():
                wait_until_live(self.page)
                settle(self.page, self.tracker)
                # The page reloaded itself after the press: that fresh load is the next clean page.
                self.reloaded = normal(self.page.url) == normal(f"{self.scene.url}{path}")
            text = self.page.evaluate("() => (document.querySelector('main') || document.body).innerText")
            if text != clean_text and os.environ.get("CRAWL_DEBUG"):
                print(
                    "\n".join(difflib.unified_diff(clean_text.splitlines(), text.splitlines(), lineterm=""))
                )
            why = [f"{r.method} {urlsplit(r.url).path}" for r, _n in sent if r.method != "GET"]
            # Requests of the page pressed, not the resources of the page it went to.
            why += [
                f"fetched {urlsplit(r.url).path}"
                for r, n in sent
                if n == navigations and not r.is_navigation_request()
            ]
            if normal(self.page.url) != normal(start_url):
                why.append(f"went to {urlsplit(self.page.url).path}")
            if text != clean_text:
                why.append("page reloaded with new content")
        alive = bool(why)
        self.log.append(
            f"{'ok  ' if alive else 'DEAD'} {path} :: {' > '.join(steps)} :: {', '.join(why[:4])}"
        )
        if not alive and not any(
            re.search(s, shape(path)) and re.search(t, label) for s, t, _why in ALLOWED_DEAD
        ):
            self.tracker.problems.append(
                f"{self.tracker.where}: pressing “{label}” sent no request and changed nothing"
            )
        if result is None or self.role_signed_out():
            return []
        return [item for item in self.collect() if item["sig"] not in before]

    def role_signed_out(self) -> bool:
        """Say whether the page ended up on the sign-in form."""
        return urlsplit(self.page.url).path == "/login"

    def crawl_page(self, path: str, last: list[tuple[str, dict[str, Any]]]) -> None:
        """Press every distinct button of one page, each from a clean page; queue the page chrome."""
        key = shape(path)
        clean_text = self.open_clean(path, opened=True)
        queue: list[tuple[tuple[str, ...], str]] = []

        def enqueue(items: list[dict[str, Any]], prefix: tuple[str, ...] = ()) -> None:
            """Queue the buttons not pressed yet (the header and footer once per role, at the end)."""
            for item in items:
                steps = (*prefix, item["sig"])
                if item["chrome"] and not prefix:
                    if item["sig"] not in {sig for sig, _item in last}:
                        last.append((item["sig"], {"path": path, **item}))
                    continue
                if (key, steps) not in self.pressed and steps not in [q[0] for q in queue]:
                    queue.append((steps, item["label"]))

        enqueue(self.collect())
        while queue:
            assert self.presses < MAX_PRESSES, f"{self.role}: more than {MAX_PRESSES} presses"
            steps, label = queue.pop(0)
            self.tracker.where = f"{self.role} on {path}, pressing “{label}”"
            revealed = self.judge(path, steps, label, clean_text)
            if revealed is None:
                # An earlier press took it away (Retire hides Save): another page of this
                # shape, or a later state, offers it again.
                self.missed[(key, steps)] = label
                revealed = []
            else:
                self.pressed.add((key, steps))
                self.missed.pop((key, steps), None)
            # Buttons shown by this press (a dialog, a disclosure, a preview) are pressed next.
            if len(steps) < 3:
                enqueue(revealed, steps)
            self.tracker.where = f"{self.role} on {path}"
            clean_text = self.open_clean(path, opened=self.reloaded)
            # Pressing may have made new buttons (Enable after Disable): press those too.
            enqueue(self.collect())


def check_link(crawl: Crawl, checked: dict[str, int], path: str, found_on: str) -> str | None:
    """GET a link with the role's cookies and record a 4xx/5xx; return the path of the HTML page
    it leads to, or None."""
    if checked.get(shape(path), 0) >= LINKS_PER_SHAPE:
        return None
    checked[shape(path)] = checked.get(shape(path), 0) + 1
    status, target = follow(crawl.page, crawl.scene.url, path)
    if status >= 400 and not allowed_failure("GET", path, status):
        crawl.tracker.problems.append(f"{crawl.role}: link {path} on {found_on} answered {status}")
    return target


def crawl_role(browser: Any, scene: Scene, role: str, probe: str = "") -> Crawl:
    """Sign in as ``role``, visit every page it reaches, press every button; return the crawl.

    ``probe`` is HTML added to the end of every page's ``<main>`` as it loads, to show that the
    crawl catches what it must.
    """
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_init_script(INSTRUMENT_JS)
    if probe:
        # The probe's handlers are attached from here: the pages' policy refuses on*="" attributes.
        script = (
            'document.addEventListener("DOMContentLoaded", () => {'
            ' const main = document.querySelector("main");'
            f" if (main) {{ main.insertAdjacentHTML('beforeend', {json.dumps(probe)}); }} }});"
            ' document.addEventListener("click", (e) => {'
            ' const probe = e.target.closest && e.target.closest("[data-probe]");'
            " if (!probe) { return; }"
            ' if (probe.dataset.probe === "fetch") { fetch("/api/v1/no-such-route"); }'
            ' if (probe.dataset.probe === "error") { setTimeout(() => { null.probe(); }); } });'
        )
        context.add_init_script(script)
    page = context.new_page()
    tracker = Tracker()
    tracker.attach(page)
    # Act on the second user's rows first, then on anything else the scene made.
    crawl = Crawl(page, scene, role, tracker, [scene.users["colleague"], scene.tag])
    try:
        sign_in(page, scene, role)
        wait_until_live(page)
        checked: dict[str, int] = {}
        # Every browser asks for it, though headless Chromium does not.
        check_link(crawl, checked, "/favicon.ico", "every page")
        last: list[tuple[str, dict[str, Any]]] = []

        def visit(path: str) -> None:
            """Crawl a page as soon as it is found (it is open and live)."""
            tracker.where = f"{role} on {path}"
            crawl.crawl_page(path, last)

        pages = discover_pages(page, scene, lambda path, on: check_link(crawl, checked, path, on), visit)
        # The header's buttons (Sign out) last, so that signing out ends the crawl. No button
        # disables or demotes the user crawling today (the Users page offers no Disable on
        # one's own row); a press that ends the session is followed by signing in again.
        last.sort(key=lambda item: bool(re.search(r"sign out|log out", item[1]["label"], re.IGNORECASE)))
        for sig, item in last:
            tracker.where = f"{role} on {item['path']}, pressing “{item['label']}”"
            clean_text = crawl.open_clean(item["path"])
            crawl.judge(item["path"], (sig,), item["label"], clean_text)
        print(f"\n{role}: {len(pages)} pages, {crawl.presses} presses: {' '.join(pages)}")
        print("\n".join(crawl.log))
        for (key, _steps), label in crawl.missed.items():
            print(f"not pressed (gone after earlier presses): {key} :: {label}")
        return crawl
    finally:
        context.close()


@pytest.mark.parametrize("role", ROLES)
def test_every_button_of_every_page_works(role: str, scene: Scene, browser: Any) -> None:
    """Every page the role reaches loads cleanly, every link answers, every button does something."""
    problems = crawl_role(browser, scene, role).tracker.problems
    assert not problems, "\n".join(problems)


def test_the_crawl_catches_dead_buttons_errors_and_broken_links(scene: Scene, browser: Any) -> None:
    """A button without a handler, a form whose script is missing, a script error, a failing
    request and a broken link, added to a real page, each fail the crawl."""
    probe = (
        '<section class="card"><button type="button">Probe without handler</button>'
        '<form class="inline"><button type="submit">Probe form without script</button></form>'
        '<button type="button" data-probe="fetch">Probe failing request</button>'
        '<button type="button" data-probe="error">Probe script error</button>'
        '<a href="/no-such-page">Probe broken link</a></section>'
    )
    problems = "\n".join(crawl_role(browser, scene, "stakeholder", probe).tracker.problems)
    assert "pressing “Probe without handler” sent no request and changed nothing" in problems
    assert "pressing “Probe form without script” sent no request and changed nothing" in problems
    assert re.search(r"Probe failing request.*GET \S+/api/v1/no-such-route answered 404", problems)
    assert re.search(r"Probe script error.*page error", problems)
    assert "link /no-such-page on /dashboard answered 404" in problems
    assert "Print situation report" not in problems
