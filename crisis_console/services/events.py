"""Emergency events: created as drafts, declared active, stood down (closed).

An event gives everything else its context: its name and details fill the hazard
templates, and the active ones show in a banner on every page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from crisis_console import clock
from crisis_console.services import audit, signals, validation
from crisis_console.services.errors import Conflict, NotFound, ValidationError
from crisis_console.store import Store
from scripts_library.templates import HAZARDS

KINDS: tuple[str, ...] = (*HAZARDS, "other")
SEVERITIES: tuple[str, ...] = ("minor", "moderate", "severe", "extreme")
STATUSES: tuple[str, ...] = ("draft", "active", "closed")
#: Details an event may carry to fill template placeholders.
DETAIL_HINTS = ("hotline", "website", "shelter_list")


@dataclass(frozen=True)
class Event:
    """An emergency event."""

    id: int
    name: str
    kind: str
    severity: str
    status: str
    areas: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    exercise: bool = False
    #: A drill's public messages go on the live public page only when this is set.
    publish_drill: bool = False
    #: The script (any language of its translation group) whose key message SMS replies
    #: carry; None: the newest approved script of the event.
    sms_script_id: int | None = None
    created_by: str = ""
    created_at: str = ""
    declared_at: str = ""
    closed_at: str = ""

    def public(self) -> dict[str, Any]:
        """Return the event as the API shows it."""
        return asdict(self)

    def template_values(self) -> dict[str, str]:
        """Return the values this event fills into script templates."""
        return {**self.details, "event_name": self.name, "areas": ", ".join(self.areas)}


def _from_fields(fields: dict[str, str]) -> Event:
    return Event(
        id=int(fields["id"]),
        name=fields.get("name", ""),
        kind=fields.get("kind", "other"),
        severity=fields.get("severity", "moderate"),
        status=fields.get("status", "draft"),
        areas=json.loads(fields.get("areas") or "[]"),
        details=json.loads(fields.get("details") or "{}"),
        exercise=fields.get("exercise") == "1",
        publish_drill=fields.get("publish_drill") == "1",
        sms_script_id=int(fields["sms_script_id"]) if fields.get("sms_script_id") else None,
        created_by=fields.get("created_by", ""),
        created_at=fields.get("created_at", ""),
        declared_at=fields.get("declared_at", ""),
        closed_at=fields.get("closed_at", ""),
    )


class Events:
    """The event rules over a store."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, data: Mapping[str, Any], *, actor: str) -> Event:
        """Create a draft event from ``{name, kind, severity, areas?, details?, exercise?}``."""
        fields = {
            "name": validation.text(data, "name", max_length=120),
            "kind": validation.choice(data, "kind", KINDS),
            "severity": validation.choice(data, "severity", SEVERITIES),
            "areas": json.dumps(validation.text_list(data, "areas")),
            "details": json.dumps(validation.string_map(data, "details")),
            "exercise": "1" if _yes(data.get("exercise")) else "0",
            "publish_drill": "1" if _yes(data.get("publish_drill")) else "0",
            "status": "draft",
            "created_by": actor,
            "created_at": clock.iso(),
        }
        event_id = self.store.events.new_id()
        entry = audit.entry(
            actor, "event.created", f"event:{event_id}", name=fields["name"], kind=fields["kind"]
        )
        self.store.events.create(fields, entry, record_id=event_id)
        return self._announce(event_id, "created")

    def get(self, event_id: int | str) -> Event | None:
        """Return an event, or None."""
        fields = self.store.events.get(event_id)
        return _from_fields(fields) if fields else None

    def require(self, event_id: int | str) -> Event:
        """Return an event or raise NotFound."""
        event = self.get(event_id)
        if event is None:
            raise NotFound(f"No event with id {event_id}.", field="event_id")
        return event

    def list(self, status: str | None = None) -> list[Event]:
        """Return events, newest first, optionally only those with ``status``."""
        events = [_from_fields(fields) for fields in self.store.events.all()]
        return [e for e in events if status is None or e.status == status]

    def active(self) -> list[Event]:
        """Return the declared, not yet stood-down events."""
        return self.list("active")

    def exercise_ids(self) -> set[int]:
        """Return the ids of every event flagged as an exercise (drill), whatever its status."""
        return {e.id for e in self.list() if e.exercise}

    def update(self, event_id: int | str, data: Mapping[str, Any], *, actor: str) -> Event:
        """Change name, severity, areas or details of an event that is not closed."""
        updates: dict[str, str] = {}
        if "name" in data:
            updates["name"] = validation.text(data, "name", max_length=120)
        if "severity" in data:
            updates["severity"] = validation.choice(data, "severity", SEVERITIES)
        if "areas" in data:
            updates["areas"] = json.dumps(validation.text_list(data, "areas"))
        if "details" in data:
            updates["details"] = json.dumps(validation.string_map(data, "details"))
        if "publish_drill" in data:
            updates["publish_drill"] = "1" if _yes(data.get("publish_drill")) else "0"
        if "sms_script_id" in data:
            updates["sms_script_id"] = self._sms_script(data.get("sms_script_id"), event_id)

        def decide(current: dict[str, str]) -> tuple[dict[str, str], audit.AuditEntry]:
            self._exists(current, event_id)
            if current.get("status") == "closed":
                raise Conflict(
                    "This event is closed (state: closed).", field="status", code="illegal_transition"
                )
            return updates, audit.entry(actor, "event.updated", f"event:{event_id}", fields=sorted(updates))

        self.store.events.change(event_id, decide)
        return self._announce(event_id, "updated")

    def declare(self, event_id: int | str, *, actor: str) -> Event:
        """Declare a draft event: it becomes active (and its ``declared`` milestone is set)."""
        return self._move(event_id, "draft", "active", "declared_at", "event.declared", actor)

    def stand_down(self, event_id: int | str, *, actor: str) -> Event:
        """Stand down an active event: it closes (and its ``stood_down`` milestone is set)."""
        return self._move(event_id, "active", "closed", "closed_at", "event.stood_down", actor)

    def _move(
        self, event_id: int | str, source: str, target: str, stamp: str, action: str, actor: str
    ) -> Event:
        now = clock.iso()
        # The milestone is written in the same transaction as the change, at the same time.
        milestone = {"event.declared": "declared", "event.stood_down": "stood_down"}[action]

        def decide(current: dict[str, str]) -> tuple[dict[str, str], audit.AuditEntry]:
            self._exists(current, event_id)
            if current.get("status") != source:
                state = current.get("status")
                verb = action.split(".")[1].replace("_", " ")
                raise Conflict(
                    f"Cannot mark {verb} an event that is {state} (state: {state}).",
                    field="status",
                    code="illegal_transition",
                )
            return {"status": target, stamp: now}, audit.entry(
                actor, action, f"event:{event_id}", name=current.get("name")
            )

        def also(pipe: Any) -> None:
            self.store.milestones.record_in(pipe, event_id, milestone, now)

        self.store.events.change(event_id, decide, also)
        return self._announce(event_id, milestone)

    def _announce(self, event_id: int | str, what: str) -> Event:
        """Return the changed event, after telling this store's subscribers."""
        event = self.require(event_id)
        signals.send(signals.event_changed, self.store, what, event=event)
        return event

    def _sms_script(self, value: Any, event_id: int | str) -> str:
        """Check the script chosen for SMS replies: one of this event's scripts ("" clears it)."""
        if value in (None, ""):
            return ""
        if not str(value).isdigit():
            raise ValidationError("sms_script_id must be a script id.", field="sms_script_id")
        fields = self.store.scripts.get(value)
        if not fields or fields.get("event_id") != str(event_id):
            raise ValidationError(f"No script {value} belongs to this event.", field="sms_script_id")
        return str(int(value))

    @staticmethod
    def _exists(current: dict[str, str], event_id: int | str) -> None:
        if not current:
            raise NotFound(f"No event with id {event_id}.", field="event_id")


def _yes(value: Any) -> bool:
    """Return whether a form or JSON flag is set."""
    return value in (True, "1", "true", "on")
