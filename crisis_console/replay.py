"""Feed a historical CSV of complaints through the real intake, at its own times or shifted to now.

Columns are mapped to complaint fields with ``COLUMN=FIELD``; the Boston 311 file of
``shared/data`` is recognised and mapped by itself (its local times, its ZIP codes that
lost their leading zero, its channels), and its request types become categories.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crisis_console import clock
from crisis_console.services.categories import Categories, lookup_key, slug
from crisis_console.services.errors import ServiceError
from crisis_console.services.intake import MAX_BATCH, Intake
from crisis_console.store import Store

BOSTON_MAP = {
    "OPEN_DT": "occurred_at",
    "TYPE": "category",
    "LOCATION_ZIPCODE": "zip",
    "LATITUDE": "lat",
    "LONGITUDE": "lon",
    "Source": "channel",
    "CASE_TITLE": "text",
}
BOSTON_CHANNELS = {
    "Constituent Call": "phone",
    "Citizens Connect App": "web",
    "Self Service": "web",
    "Twitter": "web",
}
#: The hazards Boston's storm-related request types answer, so a spike on one of them
#: suggests that hazard's scripts and announcement (the closed loop).
BOSTON_HAZARDS = {
    "Misc. Snow Complaint": ["winter_storm"],
    "Request for Snow Plowing (Emergency Responder)": ["winter_storm"],
    "Snow Removal": ["winter_storm"],
    "Heat - Excessive  Insufficient": ["winter_storm", "power_outage"],
    "Street Light Outages": ["power_outage"],
    "Traffic Signal Repair": ["power_outage"],
    "Downed Wire": ["power_outage", "hurricane"],
    "Tree Emergencies": ["hurricane"],
    "No Utilities Residential - Water": ["boil_water"],
    "Watermain Break": ["boil_water", "flood"],
    "Catchbasin": ["flood"],
}
BOSTON_TIME = "%m/%d/%Y %I:%M:%S %p"
BOSTON_ZONE = ZoneInfo("America/New_York")


@dataclass
class Summary:
    """What a replay did."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    categories_added: int = 0


def is_boston(columns: Iterable[str]) -> bool:
    """Return whether a header is the Boston 311 export's."""
    return {"OPEN_DT", "TYPE", "LOCATION_ZIPCODE"} <= set(columns)


def boston_record(row: dict[str, str]) -> dict[str, Any]:
    """Turn one Boston 311 row into a complaint record."""
    record: dict[str, Any] = {"category": row.get("TYPE", "").strip()}
    opened = row.get("OPEN_DT", "").strip()
    try:
        record["occurred_at"] = clock.iso(datetime.strptime(opened, BOSTON_TIME).replace(tzinfo=BOSTON_ZONE))
    except ValueError:
        record["occurred_at"] = opened  # intake names the bad time
    zip_raw = row.get("LOCATION_ZIPCODE", "").strip()
    if zip_raw:
        try:
            record["zip"] = f"{int(float(zip_raw)):05d}"
        except ValueError:
            record["zip"] = zip_raw
    if row.get("LATITUDE") and row.get("LONGITUDE"):
        record["lat"], record["lon"] = row["LATITUDE"], row["LONGITUDE"]
    record["channel"] = BOSTON_CHANNELS.get(row.get("Source", ""), "import")
    record["text"] = (row.get("CASE_TITLE") or "")[:4000]
    return record


def mapped_record(row: dict[str, str], mapping: dict[str, str]) -> dict[str, Any]:
    """Turn a row into a complaint record with a COLUMN -> FIELD mapping."""
    return {target: row.get(column, "") for column, target in mapping.items() if row.get(column, "") != ""}


def read_records(path: Path, mapping: dict[str, str] | None) -> tuple[list[dict[str, Any]], bool]:
    """Read and map every row, oldest first; return the records and whether it was Boston's file."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        boston = mapping is None and is_boston(reader.fieldnames or [])
        if mapping is None and not boston:
            raise ValueError("Give a column mapping with --map COLUMN=FIELD (category is required).")
        records = [boston_record(row) if boston else mapped_record(row, mapping or {}) for row in reader]
    records.sort(key=lambda r: str(r.get("occurred_at", "")))
    return records, boston


def add_missing_categories(store: Store, records: list[dict[str, Any]]) -> int:
    """Create a category for every name the catalogue does not know; return how many."""
    service = Categories(store)
    known = service.resolver()
    added = 0
    for name in sorted({str(r.get("category", "")).strip() for r in records} - {""}):
        if lookup_key(name) in known or slug(name) in known:
            continue
        try:
            hazards = BOSTON_HAZARDS.get(name, [])
            service.create({"name": name, "code": slug(name), "hazards": hazards}, actor="replay")
            added += 1
        except ServiceError:
            continue  # a clash with another name: intake will map or reject those rows
    return added


def shift_to_now(
    records: list[dict[str, Any]], now: datetime, *, live_from: datetime | None = None, speed: float = 0
) -> None:
    """Move the records to today's time.

    Without ``live_from``, at a ``speed`` the first record happens now and the rest follow at
    ``speed`` times their real pace (their times compressed as much, so each arrives at its own
    time); as fast as possible, the last record happens now and the rest are the recent past.
    With ``live_from``, that instant of the file is moved to the current hour, by whole hours,
    so every record keeps its minute and hour buckets and its position in the day: records
    before it become the past (the history baselines are computed from), those after it
    happen as the clock reaches them, and the detector sees the same counts it saw then.
    """
    times = [clock.parse_iso(r["occurred_at"]) for r in records if _parses(r.get("occurred_at"))]
    if not times:
        return
    hour = timedelta(hours=1)
    if live_from is not None:
        anchor = _floor(live_from, hour)
        offset, factor = _floor(now, hour) - anchor, 1.0
    elif speed > 0:
        anchor, offset, factor = min(times), now - min(times), speed
    else:
        anchor, offset, factor = max(times), now - max(times), 1.0
    for record in records:
        if _parses(record.get("occurred_at")):
            moment = clock.parse_iso(record["occurred_at"])
            record["occurred_at"] = clock.iso(anchor + offset + (moment - anchor) / factor)


def _floor(moment: datetime, unit: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=clock.UTC)
    return epoch + ((moment - epoch) // unit) * unit


def _parses(value: Any) -> bool:
    try:
        clock.parse_iso(str(value))
    except ValueError:
        return False
    return True


def batches(
    records: list[dict[str, Any]],
    speed: float,
    sleep: Callable[[float], None],
    *,
    on_the_clock: bool = False,
    now: Callable[[], datetime] = clock.now,
) -> Iterator[list[dict[str, Any]]]:
    """Yield records in intake batches: at once (``speed`` 0), at ``speed`` times their real
    pace, or (``on_the_clock``, for records shifted to today) each when the clock reaches its time."""
    if speed <= 0 and not on_the_clock:
        for start in range(0, len(records), MAX_BATCH):
            yield records[start : start + MAX_BATCH]
        return
    started, first = time.monotonic(), None
    pending: list[dict[str, Any]] = []
    for record in records:
        moment = clock.parse_iso(record["occurred_at"]) if _parses(record.get("occurred_at")) else None
        if moment is not None:
            if on_the_clock:
                wait = (moment - now()) / timedelta(seconds=1)
            else:
                first = first or moment
                due = (moment - first) / timedelta(seconds=1) / speed
                wait = due - (time.monotonic() - started)
            if wait > 0.05 and pending:
                yield pending
                pending = []
            if wait > 0:
                sleep(wait)
        pending.append(record)
        if len(pending) >= MAX_BATCH:
            yield pending
            pending = []
    if pending:
        yield pending


def replay(
    store: Store,
    records: list[dict[str, Any]],
    *,
    speed: float = 0,
    on_the_clock: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    sleep: Callable[[float], None] = time.sleep,
    sent: Callable[[int], None] = lambda n: None,
) -> Summary:
    """Send records through the intake; return the summary (``sent`` hears of each accepted batch)."""
    summary = Summary(read=len(records))
    intake = Intake(store)
    for batch in batches(records, speed, sleep, on_the_clock=on_the_clock):
        result = intake.submit(batch, channel="import", source="replay")
        summary.accepted += result["accepted"]
        if result["accepted"]:
            sent(result["accepted"])
        summary.rejected += len(result["rejected"])
        for rejection in result["rejected"]:
            reason = f"{rejection['error']['field']}: {rejection['error']['code']}"
            summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        progress(len(batch))
    return summary
