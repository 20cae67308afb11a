"""Error responses: JSON in API.md's shape for machine routes, HTML pages for people.

``{"error": {"code": "...", "message": "...", "field": "..."}}`` — ``field`` names the
input at fault when there is one. Nothing a user can type reaches the 500 handler; if
something does, it is logged and answered without a traceback.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from crisis_console.auth.loaders import wants_json
from crisis_console.extensions import login_manager
from crisis_console.services.errors import ServiceError

#: Machine codes for plain HTTP errors.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

TITLES = {
    400: "That request could not be read",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    409: "That clashes with the current state",
    413: "Too large",
    422: "Please check what you entered",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "The console's data store is unavailable",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """Return the JSON error body of API.md."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def respond(status: int, code: str, message: str, field: str | None = None):
    """Answer an error as JSON or as an HTML page, whichever the route speaks."""
    if wants_json():
        return jsonify(error_body(code, message, field)), status
    title = TITLES.get(status, "Error")
    return render_template("errors/error.html", status=status, title=title, message=message), status


#: Seconds after which a client should try again while the store is unavailable (the
#: ``Retry-After`` header, and the page's own reload).
STORE_RETRY_SECONDS = 5


def store_unavailable():
    """Answer 503 ``store_unavailable``: JSON for machines, a page that retries by itself for people."""
    message = "The data store is unavailable; try again shortly."
    if wants_json():
        response = jsonify(error_body("store_unavailable", message))
    else:
        response = render_template(
            "errors/store_unavailable.html", message=message, retry_seconds=STORE_RETRY_SECONDS
        )
    return response, 503, {"Retry-After": str(STORE_RETRY_SECONDS)}


def init_app(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        return respond(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        message = "The form or request is missing a valid CSRF token; reload the page and try again."
        return respond(400, "csrf_failed", message, "csrf_token")

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        response = respond(
            429, "rate_limited", f"Too many attempts: limit is {exc.description}. Wait a minute."
        )
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        return respond(status, HTTP_CODES.get(status, "error"), exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return http_error(exc)
        from redis import RedisError

        if isinstance(exc, RedisError):
            # Render the page as signed out: loading the user would hit Redis again.
            g._login_user = login_manager.anonymous_user()
            app.logger.error("Redis error on %s %s: %s", request.method, request.path, exc)
            return store_unavailable()
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        return respond(500, "internal_error", InternalServerError.description)
