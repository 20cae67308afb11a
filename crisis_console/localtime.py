"""Local time for everything people read: the console's zone (``CRISIS_TIMEZONE``), 24-hour.

Stored and API values stay ISO 8601 in UTC (see :mod:`crisis_console.clock`); pages, CSV
exports, the situation report and alert texts show them through :func:`format_time`, as
``2015-02-09 14:05 EST``. Plain Python: no Flask.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crisis_console import clock

#: The setting that names the zone.
SETTING = "CRISIS_TIMEZONE"
#: Where a Flask app keeps its resolved zone (``app.extensions[EXTENSION]``).
EXTENSION = "crisis_timezone"
#: The zone used when the machine's own cannot be named.
FALLBACK = "UTC"
#: Output patterns, by style: the date and minute (default), with seconds, the time alone.
STYLES = {
    "minute": "%Y-%m-%d %H:%M",
    "seconds": "%Y-%m-%d %H:%M:%S",
    "time": "%H:%M",
    "date": "%Y-%m-%d",
}
#: Above this an epoch number is taken as milliseconds (1e11 s is the year 5138).
_EPOCH_MS_FROM = 10**11


class ZoneError(ValueError):
    """``CRISIS_TIMEZONE`` names no IANA time zone; the message names the setting."""


def zone(name: str | None) -> ZoneInfo:
    """Return the IANA zone ``name`` (default: the machine's), or raise ZoneError naming the setting."""
    name = (name or "").strip() or machine_zone_name()
    if not _is_zone(name):
        raise ZoneError(
            f"{SETTING}={name!r} is not an IANA time zone name (such as America/New_York or UTC)."
        )
    return ZoneInfo(name)


def machine_zone_name(tz: str | None = None, localtime: Path = Path("/etc/localtime")) -> str:
    """Return the machine's IANA zone name: from TZ, /etc/timezone or /etc/localtime, else UTC."""
    tz = os.environ.get("TZ") if tz is None else tz
    candidates = [tz.lstrip(":")] if tz else []
    timezone_file = localtime.parent / "timezone"
    if timezone_file.is_file():
        candidates.append(timezone_file.read_text(errors="replace").strip())
    try:
        target = str(localtime.resolve(strict=True))
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1].removeprefix("posix/").removeprefix("right/"))
    for name in candidates:
        if name and _is_zone(name):
            return name
    return FALLBACK


def _is_zone(name: str) -> bool:
    """Return True when ``name`` is a zone zoneinfo knows (a path never is)."""
    if name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def to_datetime(value: object) -> datetime | None:
    """Read a moment: a datetime, an ISO 8601 string, epoch seconds or milliseconds (None if empty).

    Raises:
        ValueError: the value is not a time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=clock.UTC)
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        number = float(value)
        if abs(number) >= _EPOCH_MS_FROM:
            number /= 1000
        return datetime.fromtimestamp(number, clock.UTC)
    if isinstance(value, str):
        return clock.parse_iso(value)
    raise ValueError(f"not a time: {value!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def local(value: object, tz: ZoneInfo) -> datetime | None:
    """Return the moment ``value`` in zone ``tz`` (None if empty)."""
    moment = to_datetime(value)
    return moment.astimezone(tz) if moment else None


def format_time(value: object, tz: ZoneInfo, style: str = "minute", *, zone_name: bool = True) -> str:
    """Format a moment 24-hour in ``tz`` with the zone's abbreviation: ``2015-02-09 14:05 EST``.

    An empty value gives ``""``; a value that is not a time is returned as it was, so a page
    never fails over one bad field.
    """
    try:
        moment = local(value, tz)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(value)
    if moment is None:
        return ""
    text = moment.strftime(STYLES[style])
    return f"{text} {abbreviation(moment)}" if zone_name else text


def abbreviation(moment: datetime) -> str:
    """Return the zone abbreviation in force at an aware ``moment`` (EST, EDT, CET, UTC, -03)."""
    return moment.tzname() or moment.strftime("%z")


def input_value(value: object, tz: ZoneInfo) -> str:
    """Return a ``datetime-local`` input's value for a moment, in ``tz``: ``2015-02-09T14:05``."""
    try:
        moment = local(value, tz)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M") if moment else ""
