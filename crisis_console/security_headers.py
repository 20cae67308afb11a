"""The security headers every answer carries, and the proxy in front (if one is configured).

Flask-Talisman sets them on every answer Flask makes (pages, the JSON API, Open311, TwiML,
static files, error pages). The public page is answered before Flask (see
:mod:`crisis_console.public.views`), so its stored variants carry the same policy from
:func:`public_page_headers`, built once per variant: the fast path stays a static header list.

The policy allows no inline code at all: pages load their scripts and styles from
``/static``, and pass data to scripts in ``data-*`` attributes or in
``<script type="application/json">`` blocks (which the browser does not run). Styles a script
sets through the CSSOM (``element.style.width = ...``, as uPlot and the progress bars do) are
not inline styles in CSP's sense and stay allowed; ``style="..."`` in markup does not.

Two ``data:`` sources are allowed, neither of which runs code: images, and media (the agent
page's chime is a WAV its script writes as a ``data:`` URL).

``connect-src 'self'`` covers the Socket.IO WebSocket on the same host and port (CSP Level 3
matches ``ws:``/``wss:`` of the page's own origin; the browser tests check it connects).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, Response, request

#: The console's Content-Security-Policy, directive by directive.
POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    # The agent page's chime is a WAV the script writes as a data: URL (media runs no code).
    "media-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
REFERRER_POLICY = "same-origin"
FRAME_OPTIONS = "DENY"
#: Strict-Transport-Security's max-age (sent only on HTTPS answers): one year.
HSTS_MAX_AGE = 365 * 24 * 3600


def content_security_policy(policy: Mapping[str, str] = POLICY, **changes: str) -> str:
    """Return the header value of ``policy`` with some directives replaced."""
    merged = {**policy, **changes}
    return "; ".join(f"{name} {value}" for name, value in merged.items())


#: The header as sent with every console answer.
CSP = content_security_policy()


def style_hash(css: str) -> str:
    """Return the CSP source (``'sha256-…'``) that allows one ``<style>`` element's text."""
    digest = hashlib.sha256(css.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def public_page_headers(mimetype: str, style_source: str | None = None) -> list[tuple[str, str]]:
    """Return the security headers of a stored public page variant.

    The public page inlines its stylesheet (one request per visitor during a surge), so its
    policy allows exactly that text (``style_source``, from :func:`style_hash`) and nothing
    else inline; the page has no script at all.
    """
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", REFERRER_POLICY),
    ]
    if mimetype.startswith("text/html"):
        styles = f"'self' {style_source}" if style_source else "'self'"
        headers += [
            (
                "Content-Security-Policy",
                content_security_policy(**{"script-src": "'none'", "style-src": styles}),
            ),
            ("X-Frame-Options", FRAME_OPTIONS),
        ]
    else:
        headers.append(("Content-Security-Policy", CSP))
    return headers


def init_app(app: Flask) -> None:
    """Send the security headers with every answer Flask makes, and trust a proxy in front only
    when ``CRISIS_PROXY_HOPS`` says how many there are."""
    from flask_talisman import Talisman

    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    Talisman(
        app,
        # Redirecting plain HTTP to HTTPS is the job of whatever terminates TLS in front.
        force_https=False,
        content_security_policy=CSP,
        frame_options=FRAME_OPTIONS,
        referrer_policy=REFERRER_POLICY,
        # Talisman would also believe a client's own X-Forwarded-Proto: sent below instead.
        strict_transport_security=False,
        session_cookie_secure=bool(app.config.get("SESSION_COOKIE_SECURE")),
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
        x_content_type_options=True,
    )

    @app.after_request
    def strict_transport_security(response: Response) -> Response:
        """Tell browsers to keep to HTTPS, on answers over HTTPS (as ProxyFix, if set, says)."""
        if request.is_secure:
            # Only this host: the console's name says nothing about the city's other sites.
            response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}")
        return response


#: What Socket.IO's own answers (long-polling, the WebSocket handshake) carry: they are made
#: by Engine.IO in front of Flask, so Talisman never sees them. They are data, never a page:
#: nothing may load or frame them.
SOCKET_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", REFERRER_POLICY),
    ("X-Frame-Options", FRAME_OPTIONS),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)


class SocketHeaders:
    """WSGI middleware adding :data:`SOCKET_HEADERS` to the answers under ``path``."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], path: str = "/socket.io") -> None:
        self.wsgi_app = wsgi_app
        self.path = "/" + path.strip("/") + "/"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not (environ.get("PATH_INFO", "") + "/").startswith(self.path):
            return self.wsgi_app(environ, start_response)

        def with_headers(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            present = {name.lower() for name, _ in headers}
            headers += [(n, v) for n, v in SOCKET_HEADERS if n.lower() not in present]
            return start_response(status, headers, *rest)

        return self.wsgi_app(environ, with_headers)
