"""The one decorator every Twilio webhook goes through: ``X-Twilio-Signature`` must match.

Twilio signs the exact URL it called (``PUBLIC_BASE_URL`` + path + query) and the POST
parameters with the account's auth token; anything else gets a 403 and no TwiML.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import Forbidden

F = TypeVar("F", bound=Callable[..., Any])


def signed_url() -> str:
    """Return the URL Twilio signed for this request."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        query = request.query_string.decode()
        return base + request.path + (f"?{query}" if query else "")
    return request.url


def twilio_signed(view: F) -> F:
    """Refuse (403) any request whose X-Twilio-Signature does not match."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        token = current_app.config.get("TWILIO_AUTH_TOKEN")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not token:
            current_app.logger.error("TWILIO_AUTH_TOKEN is not set: refusing %s", request.path)
            raise Forbidden("Twilio webhooks are not configured (TWILIO_AUTH_TOKEN).")
        if not signature or not RequestValidator(token).validate(
            signed_url(), request.form.to_dict(), signature
        ):
            raise Forbidden("The X-Twilio-Signature header is missing or does not match.")
        return view(*args, **kwargs)

    wrapped.allowed_roles = ("twilio",)  # type: ignore[attr-defined]  # signed by Twilio, not a user
    return wrapped  # type: ignore[return-value]
