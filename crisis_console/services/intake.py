"""One intake for every path: validate each complaint, count the good ones, name the bad ones.

A complaint is appended to the stream and its minute and hour counters are bumped in one
atomic step; a batch is one round trip. A bad record never drops the good ones: the answer
says which were rejected and why, field by field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from crisis_console import clock
from crisis_console.services.categories import MERGED, RETIRED, Categories, Matcher, lookup_key
from crisis_console.services.errors import ServiceError, ValidationError
from crisis_console.store import Store

CHANNELS = ("phone", "sms", "web", "open311", "import")
MAX_TEXT = 4000
MAX_BATCH = 1000
#: How far in the future a time may be (clocks disagree a little).
FUTURE_SKEW = timedelta(minutes=5)
ZIP_RE = re.compile(r"^\d{5}$")


@dataclass(frozen=True)
class Complaint:
    """A validated complaint."""

    occurred_at: datetime
    category: str
    channel: str
    zip: str = ""
    lat: float | None = None
    lon: float | None = None
    text: str = ""


def _number(record: Mapping[str, Any], field: str, low: float, high: float) -> float | None:
    value = record.get(field)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a number.", field=field) from None
    if not low <= number <= high:
        raise ValidationError(f"{field} must be between {low} and {high}.", field=field)
    return number


class Intake:
    """Validate and store complaints from any path."""

    def __init__(self, store: Store):
        self.store = store
        self._names: dict[str, str] | None = None
        self._fresh = False
        self._states: dict[str, dict[str, str]] | None = None
        self._matcher: Matcher | None = None

    def category_for(self, value: Any, *, fuzzy: bool = True) -> str:
        """Return the category code a name, alias or code maps to, or raise naming ``category``.

        An exact name (any case and spacing) is one dictionary look-up; anything else goes
        through forgiving matching (punctuation, run-together words, small typos), which
        refuses rather than guesses when two categories are about as close (``fuzzy`` False:
        no typos forgiven).
        """
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("category is required.", field="category")
        if self._names is None:
            self._names = Categories(self.store).resolver()
        code = self._names.get(lookup_key(value))
        if code is None:
            code = self._forgiving(value, fuzzy)
        if code is None and not self._fresh:
            # A category created moments ago in another process: look again, once per batch.
            self._names, self._fresh = Categories(self.store).resolver(fresh=True), True
            self._states = self._matcher = None
            code = self._names.get(lookup_key(value)) or self._forgiving(value, fuzzy)
        if code is None:
            self._refuse(value)
        return self._current(code)

    def _catalogue(self) -> dict[str, dict[str, str]]:
        if self._states is None:
            rows = self.store.categories.all(max_age=0.0 if self._fresh else 2.0)
            self._states = {row["code"]: row for row in rows}
        return self._states

    def _forgiving(self, value: str, fuzzy: bool = True) -> str | None:
        if self._matcher is None:
            self._matcher = Categories(self.store).matcher()
        return self._matcher.match(value, fuzzy=fuzzy).code

    def _current(self, code: str) -> str:
        """Follow a merge; refuse a retired category."""
        state = self._catalogue().get(code, {})
        if state.get("status") == MERGED and state.get("merged_into"):
            return state["merged_into"]
        if state.get("status") == RETIRED:
            raise ValidationError(
                f"{state.get('name', code)!r} is retired; pick a current category.",
                field="category",
                code="retired_category",
            )
        return code

    def _refuse(self, value: str) -> NoReturn:
        """Raise the error for a name that matches no one category, with suggestions."""
        matcher = self._matcher or Categories(self.store).matcher()
        found = matcher.match(value)
        shown = value.strip()[:80]
        names = [matcher.names[code] for code in found.suggestions]
        if found.ambiguous:
            raise ValidationError(
                f"{shown!r} could be {' or '.join(names)}; type more of the name.",
                field="category",
                code="ambiguous_category",
            )
        hint = f" Did you mean {' or '.join(names)}?" if names else ""
        raise ValidationError(f"Unknown category {shown!r}.{hint}", field="category", code="unknown_category")

    def clean(self, record: Any, *, channel: str, now: datetime | None = None) -> Complaint:
        """Validate one record, or raise ValidationError naming the field."""
        if not isinstance(record, Mapping):
            raise ValidationError("Each complaint must be an object.", field="complaint")
        now = now or clock.now()
        category = self.category_for(record.get("category"))
        occurred = now
        if record.get("occurred_at") not in (None, ""):
            if not isinstance(record["occurred_at"], str):
                raise ValidationError("occurred_at must be an ISO 8601 time.", field="occurred_at")
            try:
                occurred = clock.parse_iso(record["occurred_at"])
            except ValueError:
                raise ValidationError("occurred_at must be an ISO 8601 time.", field="occurred_at") from None
            if occurred > now + FUTURE_SKEW:
                raise ValidationError("occurred_at is in the future.", field="occurred_at")
        chosen = record.get("channel") or channel
        if chosen not in CHANNELS:
            raise ValidationError(f"channel must be one of: {', '.join(CHANNELS)}.", field="channel")
        zip_code = str(record.get("zip") or "").strip()
        if zip_code and not ZIP_RE.match(zip_code):
            raise ValidationError("zip must be a 5-digit ZIP code.", field="zip")
        lat = _number(record, "lat", -90, 90)
        lon = _number(record, "lon", -180, 180)
        if (lat is None) != (lon is None):
            raise ValidationError("lat and lon go together.", field="lon" if lon is None else "lat")
        text = record.get("text") or ""
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise ValidationError(f"text must be at most {MAX_TEXT} characters.", field="text")
        return Complaint(occurred, category, chosen, zip_code, lat, lon, text.strip())

    def submit(
        self, records: list[Any], *, channel: str, source: str, once: list[str] | None = None
    ) -> dict[str, Any]:
        """Store the valid records; return ``{accepted, rejected: [{index, error}], ids, categories}``
        (``categories``: the code each accepted record was counted under, in order).

        ``once``: an idempotency id per record (an SMS's ``sms:<MessageSid>``). A record whose
        id was stored before is not counted again; its first stream id is returned in ``ids``
        and ``repeated`` says how many were such.
        """
        if once is not None and len(once) != len(records):
            raise ValueError("once needs one idempotency id per record")
        if len(records) > MAX_BATCH:
            raise ValidationError(f"At most {MAX_BATCH} complaints per request.", field="complaints")
        now = clock.now()
        good: list[tuple[str, str, str, str, dict[str, str]]] = []
        good_once: list[str] = []
        rejected: list[dict[str, Any]] = []
        for index, record in enumerate(records):
            try:
                complaint = self.clean(record, channel=channel, now=now)
            except ServiceError as exc:
                error = {"code": exc.code, "message": exc.message, "field": exc.field}
                rejected.append({"index": index, "error": error})
                continue
            good.append(self._row(complaint, source, now))
            if once is not None:
                good_once.append(once[index])
        categories = [g[2] for g in good]
        if once is None:
            ids = self.store.complaints.add_many(good) if good else []
            return {"accepted": len(ids), "rejected": rejected, "ids": ids, "categories": categories}
        stored = self.store.complaints.add_many_once(good, good_once) if good else []
        ids = [entry_id for entry_id, _new in stored]
        repeated = sum(1 for _id, new in stored if not new)
        return {
            "accepted": len(ids),
            "rejected": rejected,
            "ids": ids,
            "categories": categories,
            "repeated": repeated,
        }

    def name_of(self, code: str) -> str:
        """Return a category's name as this intake read the catalogue (no extra round trip)."""
        return self._catalogue().get(code, {}).get("name", code)

    @staticmethod
    def _row(complaint: Complaint, source: str, now: datetime) -> tuple[str, str, str, str, dict[str, str]]:
        moment = complaint.occurred_at.astimezone(clock.UTC)
        fields = {
            "occurred_at": clock.iso(moment),
            "category": complaint.category,
            "channel": complaint.channel,
            "zip": complaint.zip,
            "lat": "" if complaint.lat is None else f"{complaint.lat:.6f}",
            "lon": "" if complaint.lon is None else f"{complaint.lon:.6f}",
            "text": complaint.text,
            "source": source,
            "received_at": clock.iso(now),
        }
        return (
            moment.strftime("%Y%m%d%H%M"),
            moment.strftime("%Y%m%d%H"),
            complaint.category,
            complaint.zip,
            fields,
        )
