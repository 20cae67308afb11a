"""The CAP inbox: a posted alert opens a draft event with the matching hazard templates.

An alert is taken once per ``(sender, identifier)``: the claim is recorded (with its audit
entry) before the event is created, so two processes receiving the same alert never open
two events. Alerts that CAP says not to act on, or that cancel, answer or update an alert
already received, are recorded and answered with the reason, opening nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crisis_console import clock
from crisis_console.cap.inbox import InboundAlert, draft_event, ignore_reason, primary_info
from crisis_console.services import audit
from crisis_console.services.errors import Conflict, ValidationError
from crisis_console.services.events import Event, Events
from crisis_console.store import Store
from scripts_library.templates import TEMPLATES_DIR, TemplateError, load_templates


@dataclass(frozen=True)
class Outcome:
    """What the inbox did with an alert: opened ``event``, or nothing and why."""

    opened: bool
    alert: dict[str, str]
    reason: str = ""
    event: Event | None = None
    notes: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """Return the answer the API gives, with the hazard templates the manager can import."""
        answer: dict[str, Any] = {"opened": self.opened, "alert": self.alert}
        if self.reason:
            answer["reason"] = self.reason
        answer["event"] = self.event.public() if self.event else None
        if self.opened and self.event is not None:
            answer["notes"] = list(self.notes)
            try:
                answer["templates"] = templates_for(self.event.kind)
            except TemplateError as exc:  # the event is open: say what is wrong, do not fail
                answer["templates"] = []
                answer["notes"].append(f"the hazard template library cannot be read: {exc}")
            if answer["templates"]:
                answer["import"] = {
                    "method": "POST",
                    "path": "/api/v1/scripts/import",
                    "body": {"event_id": self.event.id, "hazard": self.event.kind},
                }
        return answer


def templates_for(kind: str) -> list[dict[str, str]]:
    """Return the library's templates for a hazard (none for "other")."""
    root = TEMPLATES_DIR.parent.parent
    return [
        {
            "hazard": t.hazard,
            "language": t.language,
            "title": t.title,
            "topic": t.topic,
            "path": str(t.path.relative_to(root)) if t.path.is_relative_to(root) else t.path.name,
        }
        for t in load_templates()
        if t.hazard == kind
    ]


class CapInbox:
    """Receive CAP alerts into a store."""

    def __init__(self, store: Store):
        self.store = store

    def receive(self, alert: InboundAlert, *, username: str) -> Outcome:
        """Open a draft event for ``alert``, or say why not.

        Raises:
            Conflict: the same sender and identifier were received before (code duplicate).
            ValidationError: the alert has no ``<info>`` to open an event from (code no_info).
        """
        actor = f"cap-inbox:{username}"
        self._refuse_duplicate(alert)
        info = primary_info(alert)
        reason = ignore_reason(alert) or self._follow_up(alert)
        if reason is None and info is None:
            raise ValidationError(
                "The alert has no <info> block: there is no hazard, severity or area to open an event from.",
                field="info",
                code="no_info",
            )
        record = {
            **alert.summary(),
            "received_at": clock.iso(),
            "received_by": username,
            "event_id": None,
            "outcome": "ignored" if reason else "opening",
        }
        entry = audit.entry(
            actor,
            "cap.received",
            f"cap:{alert.sender}:{alert.identifier}",
            **alert.summary(),
            reason=reason or "",
        )
        if not self.store.cap.claim(alert.sender, alert.identifier, record, entry):
            self._refuse_duplicate(alert)
        if reason is not None:
            return Outcome(False, alert.summary(), reason=reason, event=self._referenced_event(alert))
        data, notes = draft_event(alert, info)  # type: ignore[arg-type]  # info is set when reason is None
        try:
            event = Events(self.store).create(data, actor=actor)
        except Exception:
            self.store.cap.release(alert.sender, alert.identifier)
            raise
        self.store.cap.settle(
            alert.sender, alert.identifier, {**record, "event_id": event.id, "outcome": "opened"}
        )
        return Outcome(True, alert.summary(), event=event, notes=notes)

    def _refuse_duplicate(self, alert: InboundAlert) -> None:
        known = self.store.cap.received(alert.sender, alert.identifier)
        if known is None:
            return
        opened = f" It opened event {known['event_id']}." if known.get("event_id") else ""
        raise Conflict(
            f"Alert {alert.identifier} from {alert.sender} was already received at {known['received_at']}.{opened}",
            field="identifier",
            code="duplicate",
        )

    def _referenced_event(self, alert: InboundAlert) -> Event | None:
        """Return the event opened by an alert this one references, if any."""
        for sender, identifier, _sent in alert.references:
            known = self.store.cap.received(sender, identifier)
            if known and known.get("event_id"):
                return Events(self.store).get(known["event_id"])
        return None

    def _follow_up(self, alert: InboundAlert) -> str | None:
        """Return why an update of an alert that already opened an event opens no other."""
        if alert.msg_type != "Update":
            return None
        event = self._referenced_event(alert)
        if event is None:
            return None  # an update of an alert never received here is news: open it
        return f"msgType Update of an alert that opened event {event.id} ({event.name}): review that event."
