"""Timestamps: one format everywhere (ISO 8601, UTC, milliseconds)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["UTC", "iso", "now", "parse_iso"]


def now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime | None = None) -> str:
    """Format a moment (default now) as ISO 8601 in UTC with milliseconds and a ``Z``."""
    moment = (moment or now()).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without an offset is taken as UTC.

    Raises:
        ValueError: the text is not an ISO 8601 time.
    """
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # an offset that moves year 1 or 9999 past the calendar's end
        raise ValueError(f"{text!r} is outside the calendar.") from None
