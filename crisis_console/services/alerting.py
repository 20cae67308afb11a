"""Alerts: what happened, through the operators' rules, into alerts with queued deliveries.

Raising an alert only writes to Redis (the alert, one delivery per recipient and channel,
the queue entries); the delivery worker sends them (:mod:`crisis_console.delivery`). So a
declaration or a spike never waits on Twilio, and nothing is lost if a process dies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alerts.evaluate import Planned, Trigger, dedup_key, due_steps, evaluate, unread_push
from alerts.rules import Rule, RuleSet, Step
from crisis_console import clock, localtime
from crisis_console.services import audit, spikes
from crisis_console.services.accounts import Accounts, User
from crisis_console.services.errors import NotFound
from crisis_console.services.events import Event, Events
from crisis_console.services.milestones import Milestones
from crisis_console.store import Store
from crisis_console.store.alerts import as_json

#: How long after its delay a push is still checked for acknowledgements (older: history).
PUSH_CHECK_SPAN = timedelta(hours=1)
#: Why a delivery was skipped: no number or address on file (an administrator can add it),
#: or the number opted out of texts (only its owner can undo that, by texting START).
NO_ADDRESS = "no_address"
OPTED_OUT = "opted_out"
OPTED_OUT_TEXT = "the number opted out of texts (texted STOP)"


@dataclass(frozen=True)
class Target:
    """One person (or address) an alert goes to."""

    name: str
    phone: str = ""
    email: str = ""


class Alerting:
    """The alert rules applied to a store."""

    def __init__(self, store: Store, rules: RuleSet, *, console_url: str = "", zone: ZoneInfo | None = None):
        self.store = store
        self.rules = rules
        self.console_url = console_url
        #: The zone alert texts show times in (``CRISIS_TIMEZONE``).
        self.zone = zone or ZoneInfo("UTC")

    # --- triggers --------------------------------------------------------------------

    def fire(
        self, trigger: Trigger, rules: RuleSet | None = None, *, exercise_during_drill: bool = False
    ) -> list[dict[str, Any]]:
        """Raise the alerts ``trigger`` calls for (each once per quiet period); return them.

        ``exercise_during_drill``: the trigger belongs to no event of its own, so it is an
        exercise when every active event is one (its alerts then say EXERCISE).
        """
        active = Events(self.store).active()
        if exercise_during_drill and active and all(e.exercise for e in active):
            trigger = replace(trigger, exercise=True)
        base = {
            "event": ", ".join(e.name for e in active),
            "console_url": self.console_url,
            "time": localtime.format_time(clock.now(), self.zone),
        }
        raised = []
        for planned in evaluate(rules or self.rules, trigger, event_active=bool(active), base=base):
            if self.store.alerts.claim(planned.dedup_key, planned.quiet_seconds):
                raised.append(self._raise(planned))
        if raised:
            Milestones(self.store).reached("first_alert")
        return raised

    def spike(self, spike: dict[str, Any], category_name: str = "") -> list[dict[str, Any]]:
        """Fire ``spike.detected`` for a spike as the detector reports it."""
        name = category_name or spike["category"]
        zip_code = spike.get("zip") or ""
        return self.fire(
            Trigger(
                kind="spike.detected",
                subject=f"spike:{spikes.subject(spike)}:{zip_code or '-'}",
                values={
                    **spike,
                    "category": name,
                    "category_code": spike["category"],
                    "area": f" in {zip_code}" if zip_code else "",
                    "zip": zip_code,
                },
                shown={"since": localtime.format_time(spike.get("since"), self.zone)},
                score=float(spike.get("score", 0)),
                category=spike["category"],
                category_name=name,
                zip=zip_code,
            ),
            exercise_during_drill=True,
        )

    def event_changed(self, event: Event, what: str) -> list[dict[str, Any]]:
        """Fire ``event.declared`` or ``event.stood_down``."""
        kind = {"declared": "event.declared", "stood down": "event.stood_down"}[what]
        return self.fire(
            Trigger(
                kind=kind,
                subject=f"event:{event.id}:{kind}",
                values={
                    "name": event.name,
                    "kind": event.kind.replace("_", " "),
                    "severity": event.severity,
                    "areas": ", ".join(event.areas) or "all areas",
                    "what": what,
                },
                exercise=event.exercise,
            )
        )

    def announcement_changed(
        self, announcement: dict[str, Any], line: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Fire ``announcement.activated`` or ``announcement.ended`` for an announcement's new state."""
        state = announcement.get("state")
        if state not in ("active", "ended"):
            return []
        kind = "announcement.activated" if state == "active" else "announcement.ended"
        messages = announcement.get("messages") or {}
        text = messages.get("en") or next(iter(messages.values()), "")
        return self.fire(
            Trigger(
                kind=kind,
                subject=f"announcement:{announcement['id']}:{kind}",
                values={
                    "line": line.get("name", ""),
                    "number": line.get("number", ""),
                    "text": text[:300],
                    "what": "live" if state == "active" else "ended",
                },
                exercise=bool(announcement.get("exercise")),
            ),
            exercise_during_drill=True,
        )

    def check_pushes(
        self,
        pushes: list[dict[str, str]],
        status: Callable[[str], dict[str, Any]],
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Fire ``push.unacknowledged`` for recent pushes still under-read after each rule's delay.

        Args:
            pushes: stored pushes (``id``, ``created_at``), newest first.
            status: loads a push's progress (``Pushes.status``), only for pushes due a check.
        """
        now = now or clock.now()
        raised = []
        for rule in self.rules.for_trigger("push.unacknowledged"):
            delay = timedelta(minutes=rule.after_minutes)
            for push in pushes:
                age = now - clock.parse_iso(push["created_at"])
                if not delay <= age <= delay + PUSH_CHECK_SPAN:
                    continue
                if self.store.alerts.claimed(dedup_key(rule.id, f"push:{push['id']}")):
                    continue
                progress = status(push["id"])
                event = Events(self.store).get(push["event_id"]) if push.get("event_id") else None
                detail = {
                    **progress,
                    "created_at": clock.parse_iso(push["created_at"]),
                    "exercise": bool(event and event.exercise),
                }
                trigger = unread_push(detail, rule, now)
                if trigger is not None:
                    raised += self.fire(trigger, RuleSet((rule,), self.rules.groups))
        return raised

    def escalate(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Take the escalation steps that are due on unacknowledged alerts; return the alerts."""
        now = now or clock.now()
        rules = {rule.id: rule for rule in self.rules.rules}
        escalated = []
        for alert in self.store.alerts.escalating():
            rule = rules.get(alert.get("rule_id", ""))
            if rule is None or alert.get("acknowledged_by"):
                continue
            done = int(alert.get("steps_done") or 0)
            steps = due_steps(rule, clock.parse_iso(alert["created_at"]), now, done)
            if not steps:
                continue
            last_index = steps[-1][0]
            if not self.store.alerts.took_step(
                alert["id"], last_index + 1, last=last_index + 1 >= len(rule.escalation)
            ):
                continue
            for _, step in steps:
                self.store.alerts.add_deliveries(
                    int(alert["id"]), self._deliveries(step.recipients, step.channels, rule, step)
                )
            escalated.append(self.get(alert["id"]))
        return escalated

    # --- people ------------------------------------------------------------------------

    def acknowledge(self, alert_id: int | str, user: User) -> dict[str, Any]:
        """Record that ``user`` has seen the alert (stops its escalation)."""
        self.require(alert_id)
        entry = audit.entry(user.username, "alert.acknowledged", f"alert:{alert_id}")
        self.store.alerts.acknowledge(alert_id, user.username, entry)
        return self.get(alert_id)

    def get(self, alert_id: int | str) -> dict[str, Any]:
        """Return an alert with its deliveries."""
        return self.require(alert_id)

    def require(self, alert_id: int | str) -> dict[str, Any]:
        """Return an alert or raise NotFound naming ``alert_id``."""
        found = self.store.alerts.get(alert_id) if str(alert_id).isdigit() else None
        if found is None:
            raise NotFound(f"No alert {alert_id}.", field="alert_id")
        return public(found)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the newest alerts, each with its deliveries."""
        return [public(alert) for alert in self.store.alerts.recent(limit)]

    # --- inside ------------------------------------------------------------------------

    def _raise(self, planned: Planned) -> dict[str, Any]:
        rule, trigger = planned.rule, planned.trigger
        fields = {
            "rule_id": rule.id,
            "rule_description": rule.description,
            "trigger": trigger.kind,
            "subject": trigger.subject,
            "message": planned.message,
            "values": as_json(trigger.values),
            "exercise": "1" if trigger.exercise else "0",
            "created_at": clock.iso(),
            # The console channel shows it to the recipients' pages: stakeholders' is the dashboard.
            "on_dashboard": "1"
            if "console" in planned.channels and self._reaches_stakeholders(planned)
            else "0",
        }
        entry = audit.entry(
            "alerts", "alert.raised", "alert", rule=rule.id, trigger=trigger.kind, message=planned.message
        )
        alert_id, _ = self.store.alerts.create(
            fields,
            self._deliveries(planned.recipients, planned.channels, rule),
            entry,
            escalating=bool(rule.escalation),
        )
        return self.get(alert_id)

    def _reaches_stakeholders(self, planned: Planned) -> bool:
        if "role:stakeholder" in planned.recipients:
            return True
        named = named_users(planned.recipients, Accounts(self.store).all())
        return any(user.role == "stakeholder" for user in named)

    def notices(self, limit: int = 5) -> list[dict[str, Any]]:
        """Return the newest alerts shown on the dashboard (message only: never who was texted)."""
        shown = [a for a in self.store.alerts.recent_fields(100) if a.get("on_dashboard") == "1"]
        return [notice(public(a)) for a in shown[:limit]]

    def _deliveries(
        self,
        recipients: tuple[str, ...] | list[str],
        channels: tuple[str, ...],
        rule: Rule,
        step: Step | None = None,
    ) -> list[dict[str, str]]:
        """Return one delivery per channel and recipient. A recipient with no number or address
        for the channel, or whose number opted out of texts (texted STOP), is a *skipped*
        delivery naming why: the alerts page shows who was not texted, without calling it a
        failure (nothing went wrong; failures are real failures)."""
        targets = self._targets(self.rules.expand(tuple(recipients)))
        opted_out = self.store.sms.opted_out_of([t.phone for t in targets]) if "sms" in channels else set()
        label = f"escalation after {step.after_minutes:g} min" if step else ""
        out: list[dict[str, str]] = []
        for channel in channels:
            if channel == "console":
                out.append(
                    {"channel": "console", "to": "managers' consoles", "status": "delivered", "step": label}
                )
            elif channel == "webhook":
                out.append({"channel": "webhook", "to": rule.webhook_url, "step": label})
            else:
                for target in targets:
                    address = target.phone if channel == "sms" else target.email
                    delivery = {"channel": channel, "to": address, "username": target.name, "step": label}
                    if not address:
                        delivery.update(
                            status="skipped",
                            skip_reason=NO_ADDRESS,
                            last_error=f"no {'mobile number' if channel == 'sms' else 'e-mail address'} on file",
                        )
                    elif channel == "sms" and address in opted_out:
                        delivery.update(status="skipped", skip_reason=OPTED_OUT, last_error=OPTED_OUT_TEXT)
                    out.append(delivery)
        return out

    def _targets(self, recipients: list[str]) -> list[Target]:
        users = [u for u in Accounts(self.store).all() if u.active]
        targets: dict[str, Target] = {}
        for recipient in recipients:
            kind, _, name = recipient.partition(":")
            if kind in ("phone", "email"):
                targets.setdefault(recipient, Target(name, **{kind: name}))
            for user in named_users([recipient], users):
                targets.setdefault(f"user:{user.username}", Target(user.username, user.phone, user.email))
        return list(targets.values())


def named_users(recipients: tuple[str, ...] | list[str], users: list[User]) -> list[User]:
    """Return the users that ``user:``, ``role:`` and ``team:`` recipients name, in recipient order."""
    found: dict[int, User] = {}
    for recipient in recipients:
        kind, _, name = recipient.partition(":")
        for user in users:
            if (
                (kind == "user" and user.username == name.lower())
                or (kind == "role" and user.role == name)
                or (kind == "team" and user.team == name)
            ):
                found.setdefault(user.id, user)
    return list(found.values())


def public(alert: dict[str, Any]) -> dict[str, Any]:
    """Return an alert as the API and pages show it."""
    deliveries = alert.get("deliveries", [])
    counts: dict[str, int] = {}
    for delivery in deliveries:
        counts[delivery.get("status", "queued")] = counts.get(delivery.get("status", "queued"), 0) + 1
    return {
        "id": int(alert["id"]),
        "rule_id": alert.get("rule_id", ""),
        "rule_description": alert.get("rule_description", ""),
        "trigger": alert.get("trigger", ""),
        "message": alert.get("message", ""),
        "values": json.loads(alert.get("values") or "{}"),
        "exercise": alert.get("exercise") == "1",
        "on_dashboard": alert.get("on_dashboard") == "1",
        "created_at": alert.get("created_at", ""),
        "acknowledged_by": alert.get("acknowledged_by") or None,
        "acknowledged_at": alert.get("acknowledged_at") or None,
        "steps_done": int(alert.get("steps_done") or 0),
        "status_counts": counts,
        "deliveries": [
            {
                "id": int(d["id"]),
                "channel": d.get("channel", ""),
                "to": d.get("to", ""),
                "username": d.get("username") or None,
                "status": d.get("status", ""),
                "attempts": int(d.get("attempts") or 0),
                "last_error": d.get("last_error") or None,
                # Skips recorded before reasons were kept were all for a missing address.
                "skip_reason": (d.get("skip_reason") or NO_ADDRESS) if d.get("status") == "skipped" else None,
                "step": d.get("step") or None,
                "updated_at": d.get("updated_at", ""),
            }
            for d in deliveries
            if d
        ],
    }


def notice(alert: dict[str, Any]) -> dict[str, Any]:
    """Return what the read-only dashboard may show of an alert."""
    return {key: alert[key] for key in ("id", "message", "created_at", "exercise")}
