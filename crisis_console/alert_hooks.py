"""Where the running console meets the alert rules: one object per process.

Views, the scheduler and the worker tell it what happened (an event declared, an
announcement live, a spike, a scheduler tick); it raises the alerts the rules call for,
tells managers' consoles (``alert.sent``) and attaches the closed loop's suggestions to
spikes. Sending is the delivery loop's job (:mod:`crisis_console.delivery`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.rules import RuleSet, load_folder
from crisis_console.services import spikes, suggestions
from crisis_console.services.alerting import Alerting
from crisis_console.services.categories import Categories
from crisis_console.services.errors import NotFound
from crisis_console.services.events import Event
from crisis_console.services.lines import Lines
from crisis_console.services.milestones import Milestones
from crisis_console.services.pushes import Pushes
from crisis_console.store import Store

log = logging.getLogger(__name__)

EXTENSION = "crisis_alert_hooks"
#: The rules shipped with the console (operators edit them in git).
DEFAULT_RULES = Path(__file__).resolve().parent.parent / "alerts" / "rules"


def load_rules(folder: str | Path | None) -> RuleSet:
    """Load the rule folder (default: ``alerts/rules``); raises ``RuleError`` naming file and line."""
    return load_folder(folder or DEFAULT_RULES)


class AlertHooks:
    """The alert rules wired to a store and to the consoles."""

    def __init__(
        self,
        store: Store,
        rules: RuleSet,
        *,
        console_url: str = "",
        emit: Callable[[dict[str, Any]], None] = lambda alert: None,
        zone: ZoneInfo | None = None,
    ):
        self.store = store
        self.alerting = Alerting(store, rules, console_url=console_url, zone=zone)
        self.emit = emit

    def _sent(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for alert in alerts:
            self.emit(alert)
        return alerts

    def event_changed(self, event: Event) -> list[dict[str, Any]]:
        """Raise the alerts of an event's declaration or stand-down."""
        what = {"active": "declared", "closed": "stood down"}.get(event.status)
        return self._sent(self.alerting.event_changed(event, what)) if what else []

    def announcement_changed(self, announcement: dict[str, Any]) -> list[dict[str, Any]]:
        """Raise the alerts of an announcement going live or ending."""
        try:
            line = Lines(self.store).require(announcement["line_id"]).public()
        except NotFound:
            line = {}
        return self._sent(self.alerting.announcement_changed(announcement, line))

    def spike(self, spike: dict[str, Any]) -> dict[str, Any]:
        """Return the spike with its category's name and suggestions; raise its alerts."""
        names = {c.code: c.name for c in Categories(self.store).list(include_inactive=True)}
        name = spikes.label(spike, names)
        Milestones(self.store).reached("first_spike")
        enriched = {
            **spike,
            "category_name": names.get(spike["category"], spike["category"]),
            "label": name,
            "suggestions": suggestions.for_spike(self.store, spike),
        }
        self._sent(self.alerting.spike(spike, name))
        return enriched

    def tick(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Check recent pushes' acknowledgements and take due escalation steps."""
        pushes = Pushes(self.store)
        raised = self.alerting.check_pushes(self.store.pushes.recent(20), pushes.status, now)
        return self._sent(raised) + self._sent(self.alerting.escalate(now))


def hooks_of(app: Any) -> AlertHooks:
    """Return the app's hooks."""
    return app.extensions[EXTENSION]
