"""Small checks for submitted fields; each failure names its field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from crisis_console import clock
from crisis_console.services.errors import ValidationError


def text(data: Mapping[str, Any], field: str, *, required: bool = True, max_length: int = 200) -> str:
    """Return a trimmed string field (``''`` when optional and absent)."""
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{field} is required.", field=field)
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text.", field=field)
    value = value.strip()
    if len(value) > max_length:
        raise ValidationError(f"{field} must be at most {max_length} characters.", field=field)
    return value


def choice(data: Mapping[str, Any], field: str, options: Iterable[str], *, default: str | None = None) -> str:
    """Return a field that must be one of ``options``."""
    allowed = list(options)
    value = data.get(field, default)
    if value not in allowed:
        raise ValidationError(f"{field} must be one of: {', '.join(allowed)}.", field=field)
    return str(value)


def text_list(data: Mapping[str, Any], field: str, *, max_items: int = 50, max_length: int = 80) -> list[str]:
    """Return a list of short strings (a comma-separated string is accepted too)."""
    value = data.get(field) or []
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"{field} must be a list of text.", field=field)
    items = [item.strip() for item in value if item.strip()]
    if len(items) > max_items or any(len(item) > max_length for item in items):
        raise ValidationError(
            f"{field} takes at most {max_items} items of {max_length} characters.", field=field
        )
    return items


def moment(data: Mapping[str, Any], field: str) -> datetime | None:
    """Return an optional ISO 8601 time field (UTC when no offset is given)."""
    value = data.get(field)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be an ISO 8601 time.", field=field)
    try:
        return clock.parse_iso(value)
    except ValueError:
        raise ValidationError(
            f"{field} must be an ISO 8601 time, e.g. 2026-01-27T06:00:00Z.", field=field
        ) from None


def string_map(data: Mapping[str, Any], field: str, *, max_length: int = 4000) -> dict[str, str]:
    """Return an optional object of text values."""
    value = data.get(field) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= max_length for k, v in value.items()
    ):
        raise ValidationError(f"{field} must be an object of text values.", field=field)
    return {k.strip(): v.strip() for k, v in value.items() if k.strip()}
