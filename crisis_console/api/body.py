"""Reading JSON request bodies with errors that name the field.

Every JSON write route reads its body through :func:`json_object`, so hostile input gets
one clear answer everywhere: a body that is not JSON is 415 (wrong ``Content-Type``) or 400
(not UTF-8, not well-formed, nested too deep, not an object), and a string no field can
hold — a NUL or other control character (XML cannot carry it), a lone surrogate (which
cannot be stored as UTF-8) or more than :data:`MAX_STRING` characters — is 422 naming the
top-level field it is in. Bodies over ``MAX_CONTENT_LENGTH`` are refused with 413 before
they are read.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import g, request

from crisis_console.services.errors import ServiceError, ValidationError

#: The longest string any field of a JSON body may hold (a script's Markdown body is the
#: longest real one, a few thousand characters).
MAX_STRING = 50_000
#: The deepest a JSON body may nest (real bodies nest three or four levels).
MAX_DEPTH = 32
#: Control characters nobody types (tab, newline and carriage return are text): XML 1.0 cannot
#: carry them, so a script or message holding one could never reach CAP, TwiML or Open311.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


class BadBody(ServiceError):
    """The body is not a JSON object (400)."""

    status = 400
    default_code = "bad_json"


class WrongMediaType(ServiceError):
    """The body is not sent as JSON (415)."""

    status = 415
    default_code = "unsupported_media_type"


def _parse() -> Any:
    """Parse the body as JSON, or raise the 4xx that says why it cannot be."""
    if not request.is_json:
        # Content-Length, not the data: a form body may already have been read as a form.
        if request.mimetype or request.content_length:
            raise WrongMediaType(
                f"Send the body as JSON (Content-Type: application/json), not {request.mimetype or 'untyped'}.",
                field="body",
            )
        raise BadBody("The body must be a JSON object (Content-Type: application/json).", field="body")
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"The body is not UTF-8 (byte {exc.start} is invalid).", field="body") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise BadBody(f"The body nests deeper than {MAX_DEPTH} levels.", field="body") from None
    except ValueError as exc:
        raise BadBody(f"The body is not well-formed JSON: {exc}.", field="body") from None


def _check(value: Any, field: str, depth: int = 0) -> None:
    """Refuse a body too deep to be real, and strings that no field can hold, naming the field."""
    if depth > MAX_DEPTH:
        raise BadBody(f"The body nests deeper than {MAX_DEPTH} levels.", field="body")
    if isinstance(value, str):
        _check_text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, field or "body")  # a bad top-level name cannot name itself
            _check(item, field or key, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, field, depth + 1)


def _check_text(text: str, field: str) -> None:
    name = field or "body"
    if len(text) > MAX_STRING:
        raise ValidationError(f"{name} is too long: at most {MAX_STRING} characters.", field=name)
    control = CONTROL.search(text)
    if control:
        what = (
            "a NUL character" if control.group() == "\x00" else f"the control character {control.group()!r}"
        )
        raise ValidationError(f"{name} contains {what}.", field=name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{name} contains a lone surrogate (an invalid \\ud800-\\udfff escape).", field=name
        ) from None


def json_object() -> dict[str, Any]:
    """Return the request's JSON object, or raise a 4xx naming ``body`` or the field at fault."""
    if "json_body" not in g:
        data = _parse()
        if not isinstance(data, dict):
            raise BadBody("The body must be a JSON object (Content-Type: application/json).", field="body")
        _check(data, "")
        g.json_body = data
    return g.json_body


def json_object_or_none() -> dict[str, Any] | None:
    """Return the request's JSON object, or None for any body that :func:`json_object` refuses."""
    try:
        return json_object()
    except ServiceError:
        return None


def required_text(data: dict[str, Any], field: str) -> str:
    """Return a non-empty string field, or raise a 422 naming it."""
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} is required and must be a non-empty string.", field=field)
    return value
