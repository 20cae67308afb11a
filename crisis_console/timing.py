"""``Server-Timing`` on every response: how long the app itself took to answer.

A caller that measures a slow answer (Twilio's request log, a browser's network panel, the
soak benchmark) can tell time spent inside the console (``app;dur=`` in milliseconds, from
the start of Flask's request handling to the response) from time spent before it: in the
listen queue, in the network, or waiting for a busy process to get to the request.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g

HEADER = "Server-Timing"


def init_timing(app: Flask) -> None:
    """Stamp each request's start and add ``Server-Timing: app;dur=…`` to its response."""

    @app.before_request
    def started() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def stamped(response: Response) -> Response:
        started_at = g.get("request_started")
        if started_at is not None:
            response.headers[HEADER] = f"app;dur={(time.perf_counter() - started_at) * 1000:.1f}"
        return response
