"""Event milestones and the timing report a drill (or a real event) is judged by.

Each milestone is recorded the first time it happens for an event and never moved again
(HSETNX), so concurrent web processes and the worker may all report it. Milestones are only
recorded while an event runs: after its declaration and before it is stood down (``stood_down``
itself is recorded as it closes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crisis_console import clock
from crisis_console.services.events import Event, Events
from crisis_console.store import Store

#: Milestones in the order the report lists them, with their labels.
MILESTONES: dict[str, str] = {
    "declared": "Declared",
    "first_push": "First script pushed",
    "all_acknowledged": "First push acknowledged by every agent",
    "announcement_live": "Phone announcement live",
    "first_spike": "First spike detected",
    "first_alert": "First alert sent",
    "stood_down": "Stood down",
}


def human_duration(seconds: float | None) -> str:
    """Say a duration the way people read it: ``45 s``, ``4 min 12 s``, ``2 h 5 min``."""
    if seconds is None:
        return "—"
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours} h {minutes} min" if minutes else f"{sign}{hours} h"
    if minutes:
        return f"{sign}{minutes} min {secs} s" if secs else f"{sign}{minutes} min"
    return f"{sign}{secs} s"


class Milestones:
    """Record milestones and build the timing report."""

    def __init__(self, store: Store):
        self.store = store

    def reached(self, name: str, *, at: datetime | None = None, event_ids: list[int] | None = None) -> None:
        """Record that ``name`` happened at ``at`` (default now) for the given events.

        Args:
            name: one of :data:`MILESTONES`.
            event_ids: the events it counts for; by default every active event. Events that
                are not running (not active; not closed, for ``stood_down``) are skipped.

        Raises:
            ValueError: ``name`` is not a milestone (a programming error, not user input).
        """
        if name not in MILESTONES:
            raise ValueError(f"unknown milestone {name!r}; use one of {', '.join(MILESTONES)}")
        events = Events(self.store)
        if event_ids is None:
            targets = events.active()
        else:
            targets = [e for e in (events.get(i) for i in dict.fromkeys(event_ids)) if e is not None]
        wanted = "closed" if name == "stood_down" else "active"
        stamp = clock.iso(at)
        for event in targets:
            if event.status == wanted:
                self.store.milestones.record(event.id, name, stamp)

    def times(self, event_id: int | str) -> dict[str, str]:
        """Return milestone name -> ISO time for one event, as recorded."""
        return self.store.milestones.all(event_id)

    def report(self, event_id: int | str) -> dict[str, Any]:
        """Return the timing report of an event: each milestone reached, in order, and the rest.

        ``after_seconds`` counts from the declaration (None while the event is a draft).

        Raises:
            NotFound: there is no such event.
        """
        event: Event = Events(self.store).require(event_id)
        times = self.times(event.id)
        declared_at = times.get("declared") or event.declared_at or ""
        start = clock.parse_iso(declared_at) if declared_at else None
        reached: list[dict[str, Any]] = []
        missing: list[str] = []
        for name, label in MILESTONES.items():
            at = times.get(name)
            if not at:
                missing.append(name)
                continue
            after = round((clock.parse_iso(at) - start).total_seconds(), 1) if start else None
            reached.append({"name": name, "label": label, "at": at, "after_seconds": after})
        return {
            "event": event.public(),
            "exercise": event.exercise,
            "declared_at": declared_at or None,
            "milestones": reached,
            "missing": missing,
        }
