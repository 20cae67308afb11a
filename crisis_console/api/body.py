"""Reading JSON request bodies with errors that name the field."""

from __future__ import annotations

from typing import Any

from flask import request

from crisis_console.services.errors import ServiceError, ValidationError


class BadBody(ServiceError):
    """The body is not a JSON object (400)."""

    status = 400
    default_code = "bad_json"


def json_object() -> dict[str, Any]:
    """Return the request's JSON object, or raise a 400 naming ``body``."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadBody("The body must be a JSON object (Content-Type: application/json).", field="body")
    return data


def required_text(data: dict[str, Any], field: str) -> str:
    """Return a non-empty string field, or raise a 422 naming it."""
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} is required and must be a non-empty string.", field=field)
    return value
