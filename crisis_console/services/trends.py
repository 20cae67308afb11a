"""Trend queries: counts per bucket per category, read from the minute and hour counters.

Never scans complaints. ``at`` ends the window (default now), so what the console saw at
any past instant can be shown again for the after-action review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crisis_console import clock
from crisis_console.services.categories import Categories
from crisis_console.services.errors import ValidationError
from crisis_console.services.spikes import WEEK
from crisis_console.store import Store

DURATION_RE = re.compile(r"^(\d{1,4})([mhd])$")
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_WINDOW = timedelta(days=120)
MAX_BUCKETS = 2000
#: Below this usual count a mover is "new", not a ratio (see movers).
RATIO_FLOOR = 0.5


#: The instants ``at`` may name: window and baseline arithmetic (weeks before ``at``) and the
#: complaint stream's ids (milliseconds since 1970) stay inside what they can represent.
EARLIEST_AT = datetime(1980, 1, 1, tzinfo=clock.UTC)
LATEST_AT = datetime(9000, 1, 1, tzinfo=clock.UTC)


def moment_at(at: str | None) -> datetime:
    """Parse the ``at`` that ends a window (default now), or raise a 422 naming ``at``."""
    if not at:
        return clock.now()
    try:
        end = clock.parse_iso(at)
    except ValueError:
        raise ValidationError("at must be an ISO 8601 time.", field="at") from None
    if not EARLIEST_AT <= end < LATEST_AT:
        raise ValidationError("at must be a time from the year 1980 to 8999.", field="at")
    return end


def duration(text: str, field: str) -> timedelta:
    """Parse ``90m``, ``24h`` or ``30d``, or raise naming ``field``."""
    match = DURATION_RE.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValidationError(f"{field} must look like 60m, 24h or 7d.", field=field)
    return int(match.group(1)) * UNITS[match.group(2)]


def series(
    store: Store,
    *,
    window: str = "60m",
    bucket: str = "1m",
    at: str | None = None,
    category: str | None = None,
    zip_code: str | None = None,
) -> dict[str, Any]:
    """Return ``{buckets, series: {category: [n…]}, totals: {category: n, "all": n}}``."""
    span, step = duration(window, "window"), duration(bucket, "bucket")
    if span > MAX_WINDOW:
        raise ValidationError("window can be at most 120 days.", field="window")
    if step > span or span / step > MAX_BUCKETS or step % timedelta(minutes=1):
        raise ValidationError(
            f"bucket must divide the window into at most {MAX_BUCKETS} buckets.", field="bucket"
        )
    end = moment_at(at)
    # Hour counters serve long windows in whole hours; shorter windows read minutes, so that
    # "the last 60 minutes" means exactly that, not the clock hour so far.
    hourly = (
        span >= timedelta(hours=24)
        and step >= timedelta(hours=1)
        and step % timedelta(hours=1) == timedelta(0)
    )
    unit = timedelta(hours=1) if hourly else timedelta(minutes=1)
    fmt = "%Y%m%d%H" if hourly else "%Y%m%d%H%M"
    end = _floor(end, unit) + unit  # the unit holding ``at`` is included
    start = _floor(end - span, step if hourly else unit)
    units: list[datetime] = []
    moment = start
    while moment < end:
        units.append(moment)
        moment += unit
    rows = store.complaints.counts([m.strftime(fmt) for m in units], hourly)
    bucket_starts: list[datetime] = []
    per_bucket: list[dict[str, int]] = []
    for moment, row in zip(units, rows, strict=True):
        index = int((moment - start) / step)
        while len(per_bucket) <= index:
            bucket_starts.append(start + len(per_bucket) * step)
            per_bucket.append({})
        counts = per_bucket[index]
        for field, value in row.items():
            name = _category_of(field, zip_code)
            if name and (category is None or name == category):
                counts[name] = counts.get(name, 0) + int(value)
    names = sorted({name for counts in per_bucket for name in counts})
    series_out = {name: [counts.get(name, 0) for counts in per_bucket] for name in names}
    totals = {name: sum(values) for name, values in series_out.items()}
    totals["all"] = sum(totals.values())
    return {
        "window": window,
        "bucket": bucket,
        "at": clock.iso(end - timedelta(milliseconds=1)) if at else clock.iso(),
        "buckets": [clock.iso(b) for b in bucket_starts],
        "series": series_out,
        "totals": totals,
    }


def counted_window(window: str, at: str | None = None) -> tuple[datetime, datetime]:
    """Return [start, end) of ``window`` ending at ``at`` (default now) as the counts cover it.

    The same span as :func:`series` with hourly buckets for a whole number of hours from 24 h
    up (the dashboard's "counts, last 24 h"), else whole minutes, so a records export of the
    window holds exactly the contacts those counts count.
    """
    span = duration(window, "window")
    if span > MAX_WINDOW:
        raise ValidationError("window can be at most 120 days.", field="window")
    end = moment_at(at)
    hourly = span >= timedelta(hours=24) and span % timedelta(hours=1) == timedelta(0)
    unit = timedelta(hours=1) if hourly else timedelta(minutes=1)
    end = _floor(end, unit) + unit
    return _floor(end - span, unit), end


def _floor(moment: datetime, unit: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=clock.UTC)
    return epoch + ((moment - epoch) // unit) * unit


def _category_of(field: str, zip_code: str | None) -> str | None:
    """Return the category a counter field counts, under the zip filter (None: not a category field)."""
    if zip_code:
        if field.startswith("cz:") and field.endswith(f":{zip_code}"):
            return field[3 : -len(zip_code) - 1]
        return None
    return field[2:] if field.startswith("c:") else None


#: Hours of history each category's baselines are computed from: the trailing week, and
#: three weeks for the same-weekday views (and the hour before, the oldest week's "- 1 hour").
WEEKS_BACK = 3
BASELINE_HOURS = WEEKS_BACK * WEEK + 1
#: Seconds a process reuses the catalogue's hazard groups (the detector reads them every pass).
HAZARDS_MAX_AGE = 10.0


@dataclass
class Recent:
    """A category-by-category look at a recent window and the history before it."""

    window: str
    start: datetime
    end: datetime
    bucket: timedelta
    counts: dict[str, list[int]]
    zips: dict[str, dict[str, int]]
    history: dict[str, list[int]]
    #: For each week back (1, 2, 3), whether the console counted anything then.
    recorded: list[bool]
    #: Hazard -> its categories, for the hazards with a category in the window.
    hazards: dict[str, list[str]]


def recent_window(store: Store, window: str, at: str | None) -> Recent:
    """Read the window's per-bucket counts and each category's hourly history before it."""
    span = duration(window, "window")
    if span > timedelta(hours=24) or span < timedelta(minutes=10):
        raise ValidationError("window must be between 10m and 24h.", field="window")
    end = moment_at(at)
    minute = timedelta(minutes=1)
    end = _floor(end, minute) + minute
    start = end - span
    minutes = [start + i * minute for i in range(int(span / minute))]
    recent_rows = store.complaints.counts([m.strftime("%Y%m%d%H%M") for m in minutes], False)
    bucket = timedelta(minutes=5) if span >= timedelta(minutes=30) else minute
    per_bucket = int(bucket / minute)
    counts: dict[str, list[int]] = {}
    zips: dict[str, dict[str, int]] = {}
    buckets = len(minutes) // per_bucket
    for index, row in enumerate(recent_rows):
        slot = min(index // per_bucket, buckets - 1)
        for field, value in row.items():
            if field.startswith("c:"):
                counts.setdefault(field[2:], [0] * buckets)[slot] += int(value)
            elif field.startswith("cz:"):
                category, _, zip_code = field[3:].rpartition(":")
                zips.setdefault(category, {})[zip_code] = zips.get(category, {}).get(zip_code, 0) + int(value)
    # History: whole hours before the window (the window's own partial hour is left out).
    history_end = _floor(start, timedelta(hours=1))
    hours = [history_end - (i + 1) * timedelta(hours=1) for i in range(BASELINE_HOURS)]
    hours.reverse()  # oldest first
    # Only the counters of the categories in the window (and of the other categories of their
    # hazards, counted together), and the total (was the console running?).
    groups = Categories(store).hazard_groups(max_age=HAZARDS_MAX_AGE)
    hazards = {hazard: codes for hazard, codes in groups.items() if counts.keys() & set(codes)}
    names = sorted(counts.keys() | {code for codes in hazards.values() for code in codes})
    rows = store.complaints.count_fields(
        [h.strftime("%Y%m%d%H") for h in hours], True, ["total", *(f"c:{name}" for name in names)]
    )
    history = {name: [row[i + 1] for row in rows] for i, name in enumerate(names)}
    recorded = [
        sum(row[0] for row in rows[BASELINE_HOURS - WEEK * (w + 1) : BASELINE_HOURS - WEEK * w]) > 0
        for w in range(WEEKS_BACK)
    ]
    return Recent(window, start, end, bucket, counts, zips, history, recorded, hazards)


def spikes_at(
    store: Store, *, window: str = "60m", at: str | None = None, recent: Recent | None = None
) -> dict[str, Any]:
    """Return the spikes as the detector saw them at ``at`` (default now), or in ``recent``."""
    from crisis_console.services.spikes import detect

    recent = recent or recent_window(store, window, at)
    found = detect(
        recent.counts,
        recent.history,
        recent.start,
        recent.bucket,
        recent.zips,
        recorded=recent.recorded,
        hazards=recent.hazards,
    )
    return {
        "window": window,
        "at": clock.iso(recent.end - timedelta(milliseconds=1)),
        "spikes": [s.public() for s in found],
    }


def movers_at(
    store: Store, *, window: str = "60m", at: str | None = None, limit: int = 8, recent: Recent | None = None
) -> dict[str, Any]:
    """Return the categories clearly above their usual level in the window (or ``recent``)."""
    from crisis_console.services.spikes import expected_rate

    recent = recent or recent_window(store, window, at)
    hours = (recent.end - recent.start) / timedelta(hours=1)
    movers = []
    for category, values in recent.counts.items():
        observed = sum(values)
        expected = expected_rate((recent.history.get(category) or [0] * 24)[-WEEK:]) * hours
        # Noise is not news: a mover is at least 2 contacts and half again above its usual.
        if observed - expected >= 2 and observed >= 1.5 * expected:
            movers.append(
                {
                    "category": category,
                    "observed": observed,
                    "expected": round(expected, 1),
                    # Against a usual level under one contact in two windows, "times usual"
                    # is a meaningless huge number: the page says "new" instead.
                    "ratio": round(observed / expected, 1) if expected >= RATIO_FLOOR else None,
                }
            )
    movers.sort(key=lambda m: (m["observed"] - m["expected"], m["observed"]), reverse=True)
    return {
        "window": window,
        "at": clock.iso(recent.end - timedelta(milliseconds=1)),
        "movers": movers[:limit],
    }
