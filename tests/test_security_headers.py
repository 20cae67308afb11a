"""Every answer carries the security headers; pages hold no inline code; cookies and the proxy
setting behave as configured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from flask import Flask, request
from flask.testing import FlaskClient

from crisis_console.app import create_app, create_webhooks_app
from crisis_console.config import Config, TestConfig, https_setting
from crisis_console.public.pages import PublicSettings, render_public_pages
from crisis_console.roles import Role
from crisis_console.security_headers import CSP, SOCKET_HEADERS, style_hash
from tests.conftest import TWILIO_TOKEN
from tests.helpers import wait_until_served

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
SCRIPTS = ROOT / "crisis_console" / "static" / "js"

#: What every answer from the console says, whatever its status or type.
EVERYWHERE = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
#: What every page (and, harmlessly, every other answer Flask makes) says besides.
PAGES = {**EVERYWHERE, "Content-Security-Policy": CSP, "X-Frame-Options": "DENY"}

#: A <script> element that the browser would run: no src, and not a JSON data block.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
#: An event handler attribute (onclick=, onload=, …) in markup.
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
#: Markup the policy refuses besides: style attributes, <style> elements, javascript: URLs.
INLINE_STYLE = re.compile(r"<[a-z][^>]*\sstyle\s*=|<style[\s>]", re.I)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def inline_code(html: str) -> list[str]:
    """Return what in ``html`` the Content-Security-Policy would refuse to run or apply."""
    found = []
    for name, pattern in (
        ("inline script", INLINE_SCRIPT),
        ("event handler attribute", HANDLER),
        ("inline style", INLINE_STYLE),
        ("javascript URL", JAVASCRIPT_URL),
    ):
        found += [f"{name}: {match.group(0)[:80]}" for match in pattern.finditer(html)]
    return found


def assert_headers(response, expected: dict[str, str], what: str) -> None:
    """Check that ``response`` carries each expected header with its value."""
    for name, value in expected.items():
        assert response.headers.get(name) == value, f"{what}: {name} is {response.headers.get(name)!r}"


def get_paths(app: Flask) -> list[str]:
    """Return every GET route of the app that takes no argument (static files aside)."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and not rule.arguments and rule.endpoint != "static"
    )


# --- the rules the templates and scripts keep ------------------------------------------------


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_no_template_holds_inline_code(template: Path) -> None:
    """No template has an inline script, an on* handler, a javascript: URL or inline style
    (the public page's inlined stylesheet aside: its policy allows exactly that text by hash)."""
    text = template.read_text(encoding="utf-8")
    if template == TEMPLATES / "public" / "page.html":
        text = text.replace("<style>{{ css }}</style>", "")
    assert not inline_code(text), inline_code(text)


@pytest.mark.parametrize("script", sorted(SCRIPTS.glob("*.js")), ids=lambda p: p.name)
def test_no_script_writes_inline_handlers_or_styles(script: Path) -> None:
    """The console's scripts build no markup with style="" or on*="" (set through the DOM instead)."""
    text = script.read_text(encoding="utf-8")
    assert not re.search(r"""\sstyle\s*=\s*\\?["']""", text), "style= attribute in built markup"
    assert not re.search(r"""<[a-z][^>]*\son[a-z]+\s*=\s*\\?["']""", text), "on*= attribute in built markup"
    assert "javascript:" not in text


def test_the_checks_find_inline_code() -> None:
    """The template check finds each kind of inline code (so a clean run means it looked)."""
    html = (
        '<script>x()</script><script src="/a.js"></script><script id="d" type="application/json">{}</script>'
        '<button onclick="go()">Go</button><a href="javascript:go()">Go</a><p style="color: red">'
    )
    kinds = [found.split(":")[0] for found in inline_code(html)]
    assert kinds == ["inline script", "event handler attribute", "inline style", "javascript URL"]


# --- headers on every answer -----------------------------------------------------------------


@pytest.mark.parametrize("role", [None, Role.AGENT, Role.STAKEHOLDER, Role.MANAGER, Role.ADMIN])
def test_every_page_carries_the_headers_and_no_inline_code(
    app: Flask, client: FlaskClient, auth, role
) -> None:
    """Each GET route, for anyone signed out and for each role, answers (whatever the status)
    with the security headers, and its HTML holds no inline code."""
    if role is not None:
        auth.login_as(role)
    for path in get_paths(app):
        with client.get(path) as response:
            what = f"{role or 'signed out'} GET {path} ({response.status_code})"
            if path.startswith("/public"):
                assert_headers(response, EVERYWHERE, what)  # its own policy: see below
                continue
            assert_headers(response, PAGES, what)
            if response.mimetype == "text/html":
                html = response.get_data(as_text=True)
                assert not inline_code(html), f"{what}: {inline_code(html)}"


def test_api_open311_cap_static_and_error_answers_carry_the_headers(
    app: Flask, client: FlaskClient, auth
) -> None:
    """JSON (with and without a token), XML, static files and error pages carry the headers."""
    user = auth.make_user(Role.MANAGER)
    token = auth.accounts.create_token(user.username, "test", actor="test")
    bearer = {"Authorization": f"Bearer {token}"}
    answers = [
        client.get("/api/v1/events"),
        client.get("/api/v1/events", headers=bearer),
        client.post("/api/v1/complaints", json={"category": ""}, headers=bearer),
        client.get("/open311/v2/services.json"),
        client.get("/open311/v2/requests.json"),
        client.get("/cap/v1/alerts.xml"),
        client.get("/static/js/page.js"),
        client.get("/static/css/console.css"),
        client.get("/no-such-page"),
        client.get("/api/v1/no-such-route"),
    ]
    for response in answers:
        with response:
            assert_headers(
                response, PAGES, f"{response.request.method} {response.request.path} ({response.status_code})"
            )


def test_socket_io_answers_carry_headers_of_their_own(served_app) -> None:
    """Engine.IO answers before Flask: its handshake, polls and refusals still carry nosniff,
    a referrer policy and a policy that lets nothing load or frame them."""
    base = f"{served_app.url}/socket.io/"
    answers = {
        "handshake": requests.get(base, params={"EIO": "4", "transport": "polling"}, timeout=30),
        "bad session": requests.get(
            base, params={"EIO": "4", "transport": "polling", "sid": "x"}, timeout=30
        ),
        "bad transport": requests.get(base, params={"EIO": "4", "transport": "carrier-pigeon"}, timeout=30),
    }
    assert answers["handshake"].status_code == 200 and answers["bad session"].status_code == 400
    for what, response in answers.items():
        for name, value in SOCKET_HEADERS:
            assert response.headers.get(name) == value, (what, name, dict(response.headers))
    page = requests.get(f"{served_app.url}/login", timeout=30)
    assert page.headers["Content-Security-Policy"] == CSP  # Flask's own answers keep theirs


def test_twiml_answers_carry_nosniff(client: FlaskClient, twilio) -> None:
    """The Twilio webhooks' TwiML, and their refusal of a bad signature, carry the headers."""
    params = {"CallSid": "CA1", "From": "+15550001111", "To": "+15550002222", "AccountSid": "AC1"}
    answered = twilio.post("/twilio/voice", params)
    assert answered.status_code == 200 and answered.mimetype in ("text/xml", "application/xml")
    assert_headers(answered, PAGES, "voice TwiML")
    sms = twilio.post("/twilio/sms", {**params, "MessageSid": "SM1", "Body": "hello"})
    assert_headers(sms, PAGES, f"sms TwiML ({sms.status_code})")
    refused = twilio.post("/twilio/voice", params, signature="wrong")
    assert refused.status_code == 403
    assert_headers(refused, PAGES, "refused webhook")


def test_the_webhooks_only_app_carries_the_headers(
    redis_url: str, prefix: str, tmp_path, monkeypatch
) -> None:
    """``serve --only webhooks`` answers with the same headers."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_webhooks_app(
        TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    )
    from tests.helpers import TwilioSigner

    twilio = TwilioSigner(app.test_client(), TWILIO_TOKEN)
    params = {"CallSid": "CA2", "From": "+15550001111", "To": "+15550002222", "AccountSid": "AC1"}
    assert_headers(twilio.post("/twilio/voice", params), PAGES, "webhooks app TwiML")
    assert_headers(twilio.post("/twilio/voice", params, signature="wrong"), PAGES, "webhooks app 403")


def test_the_public_page_carries_its_own_policy(app: Flask, client: FlaskClient, store) -> None:
    """The public page (answered before Flask) carries the headers, with a policy that runs no
    script and allows exactly its inlined stylesheet; its JSON carries the console's."""
    render_public_pages(store, PublicSettings.from_config(app.config))
    for path in ("/public", "/public?lang=es", "/public/999"):
        response = client.get(path)
        assert_headers(response, {**EVERYWHERE, "X-Frame-Options": "DENY"}, path)
        policy = response.headers["Content-Security-Policy"]
        html = response.get_data(as_text=True)
        (css,) = re.findall(r"<style>(.*?)</style>", html, re.S)
        assert f"style-src 'self' {style_hash(css)}" in policy, policy
        assert "script-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "default-src 'self'" in policy and "object-src 'none'" in policy
        assert not inline_code(html.replace(f"<style>{css}</style>", "")), path
    as_json = client.get("/public.json")
    assert_headers(as_json, {**EVERYWHERE, "Content-Security-Policy": CSP}, "/public.json")


# --- cookies and the proxy -------------------------------------------------------------------


def test_the_session_cookie_is_httponly_and_lax_and_not_secure_over_http(client: FlaskClient) -> None:
    """Over plain HTTP (the default) the session cookie is HttpOnly and SameSite=Lax, not Secure."""
    cookie = client.get("/login").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({}, False),
        ({"CRISIS_HTTPS": "1"}, True),
        ({"CRISIS_HTTPS": "0", "PUBLIC_BASE_URL": "https://console.example.org"}, False),
        ({"PUBLIC_BASE_URL": "https://console.example.org"}, True),
        ({"PREFERRED_URL_SCHEME": "https"}, True),
        ({"PUBLIC_BASE_URL": "http://console.example.org"}, False),
    ],
)
def test_https_is_read_from_its_setting_or_the_urls(env: dict[str, str], secure: bool) -> None:
    """``CRISIS_HTTPS`` decides when set; otherwise an https URL setting means HTTPS."""
    assert https_setting(env, env.get("PUBLIC_BASE_URL")) is secure


def test_over_https_the_session_cookie_is_secure(redis_url: str, prefix: str, tmp_path, monkeypatch) -> None:
    """With ``CRISIS_HTTPS=1`` the session cookie is Secure (and still HttpOnly, SameSite=Lax)."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("CRISIS_HTTPS", "1")
    config = TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix)
    assert config.SESSION_COOKIE_SECURE and config.REMEMBER_COOKIE_SECURE
    app = create_app(config)
    cookie = app.test_client().get("/login", base_url="https://localhost").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def _probe(hops: int, redis_url: str, prefix: str) -> FlaskClient:
    """Return a client of an app with ``PROXY_HOPS=hops`` and a route that says what it sees."""
    app = create_app(TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix, PROXY_HOPS=hops))

    @app.get("/_probe")
    def probe() -> dict[str, object]:
        return {"addr": request.remote_addr, "scheme": request.scheme, "host": request.host}

    return app.test_client()


FORWARDED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "console.example.org",
}


def test_forwarded_headers_are_ignored_by_default(redis_url: str, prefix: str, tmp_path, monkeypatch) -> None:
    """Reached directly (``CRISIS_PROXY_HOPS`` unset), a client's X-Forwarded-* are not believed."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    assert Config().PROXY_HOPS == 0
    seen = _probe(0, redis_url, prefix).get("/_probe", headers=FORWARDED).get_json()
    assert seen == {"addr": "127.0.0.1", "scheme": "http", "host": "localhost"}


def test_one_proxy_hop_is_trusted_when_configured(redis_url: str, prefix: str, tmp_path, monkeypatch) -> None:
    """With ``CRISIS_PROXY_HOPS=1`` the proxy's address, scheme and host are the request's, and an
    HTTPS request gets Strict-Transport-Security."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("CRISIS_PROXY_HOPS", "1")
    assert Config().PROXY_HOPS == 1
    response = _probe(1, redis_url, prefix).get("/_probe", headers=FORWARDED)
    assert response.get_json() == {"addr": "203.0.113.9", "scheme": "https", "host": "console.example.org"}
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


# --- in a real browser -----------------------------------------------------------------------

#: Installed in every document before its scripts run: keeps each CSP violation the page meets.
VIOLATIONS_JS = """
(() => {
  window.__ccViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__ccViolations.push(`${e.effectiveDirective} refused ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
  });
})();
"""
#: What a page adds as it loads, to show the listener hears violations (an inline script, an
#: inline style attribute).
PROBE_JS = """
document.addEventListener("DOMContentLoaded", () => {
  const script = document.createElement("script");
  script.textContent = "window.__ccProbeRan = true;";
  document.body.appendChild(script);
  document.body.setAttribute("style", "outline: 1px solid red");
});
"""
ROLES = ["agent", "stakeholder", "viewer", "manager", "admin"]


def browser_test(test):
    """Mark a test as driving Chromium against the served console."""
    from tests.chromium import BROWSER_MARKS

    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


def watch_policy(page, found: list[str]) -> None:
    """Record the console's messages about the Content-Security-Policy into ``found``."""
    page.on(
        "console",
        lambda message: (
            found.append(f"console: {message.text}")
            if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text
            else None
        ),
    )


def violations(page) -> list[str]:
    """Return (and forget) the violations the open page has met."""
    return page.evaluate("() => (window.__ccViolations || []).splice(0)")


@browser_test
@pytest.mark.parametrize("role", ROLES)
def test_no_page_of_any_role_meets_a_policy_violation(role: str, scene, browser) -> None:
    """Every page the role reaches loads and goes live with the policy on and no violation, and
    its Socket.IO connection is a WebSocket (``connect-src 'self'`` covers same-origin ws:)."""
    from tests.browsing import discover_pages, sign_in, wait_until_live

    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=scene.url)
    context.add_init_script(VIOLATIONS_JS)
    page = context.new_page()
    found: list[str] = []
    watch_policy(page, found)
    transports: dict[str, str] = {}
    try:
        sign_in(page, scene, role)
        wait_until_live(page)

        def visit(path: str) -> None:
            page.wait_for_load_state("networkidle")
            found.extend(f"{path}: {v}" for v in violations(page))
            transport = page.evaluate(
                "() => { const s = window.crisisConsole && window.crisisConsole.socket;"
                " return s && s.connected ? s.io.engine.transport.name : null; }"
            )
            if transport:
                transports[path] = transport

        pages = discover_pages(page, scene, visit=visit)
        print(f"\n{role}: {len(pages)} pages: {' '.join(pages)}")
        assert not found, "\n".join(found)
        assert transports, "no page of the role had a live connection"
        assert set(transports.values()) == {"websocket"}, transports
    finally:
        context.close()


@browser_test
def test_the_public_page_meets_no_policy_violation(scene, served_app, browser) -> None:
    """The public page, with its inlined stylesheet allowed by hash, meets no violation and is styled."""

    render = render_public_pages(served_app.store, PublicSettings.from_config({"CRISIS_TIMEZONE": "UTC"}))
    wait_until_served(served_app.url, render)
    context = browser.new_context(base_url=scene.url)
    context.add_init_script(VIOLATIONS_JS)
    page = context.new_page()
    found: list[str] = []
    watch_policy(page, found)
    try:
        for path in ("/public", "/public?lang=es"):
            page.goto(path)
            page.wait_for_load_state("networkidle")
            found += [f"{path}: {v}" for v in violations(page)]
            # The stylesheet applied: the skip link sits off screen until focused.
            assert (
                page.evaluate("() => getComputedStyle(document.querySelector('.skip-link')).position")
                != "static"
            )
        assert not found, "\n".join(found)
    finally:
        context.close()


@browser_test
def test_the_policy_refuses_inline_code_and_the_test_hears_it(scene, browser) -> None:
    """An inline script and a style attribute added to a real page are refused, and reported
    (so a clean run above means the policy was on and the listener heard)."""
    from tests.browsing import sign_in, wait_until_live

    context = browser.new_context(base_url=scene.url)
    context.add_init_script(VIOLATIONS_JS)
    context.add_init_script(PROBE_JS)
    page = context.new_page()
    found: list[str] = []
    watch_policy(page, found)
    try:
        sign_in(page, scene, "stakeholder")
        wait_until_live(page)
        page.goto("/dashboard")
        page.wait_for_load_state("networkidle")
        heard = "\n".join(violations(page))
        assert page.evaluate("() => window.__ccProbeRan === undefined")
        assert re.search(r"script-src-elem refused inline", heard), heard
        assert re.search(r"style-src-attr refused inline", heard), heard
        assert any("Content Security Policy" in message for message in found), found
    finally:
        context.close()
