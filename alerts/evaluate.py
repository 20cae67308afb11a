"""Which rules a trigger fires, with what message, to whom: pure functions over plain data.

The console turns what happened (a spike, a declaration, a push still unread) into a
:class:`Trigger`; :func:`evaluate` answers with the notifications to plan. De-duplication
keys and quiet periods are computed here and enforced by the store, so that two workers
seeing the same spike send one alert.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.rules import Rule, RuleSet, Step


@dataclass(frozen=True)
class Trigger:
    """Something that happened, in the terms rules filter on and messages show."""

    kind: str
    #: What it is about, for de-duplication: ``spike:power_outage:02124``, ``event:12``, ``push:7``.
    subject: str
    values: dict[str, Any] = field(default_factory=dict)
    #: Values as people read them (times in the console's zone), used over ``values`` in messages.
    shown: dict[str, Any] = field(default_factory=dict)
    exercise: bool = False
    score: float = 0.0
    category: str = ""
    category_name: str = ""
    zip: str = ""


@dataclass(frozen=True)
class Planned:
    """One alert to raise: a rule's message for a trigger, to expanded recipients."""

    rule: Rule
    trigger: Trigger
    dedup_key: str
    quiet_seconds: int
    message: str
    recipients: tuple[str, ...]
    channels: tuple[str, ...]


def dedup_key(rule_id: str, subject: str) -> str:
    """Return the key under which a rule fires once per quiet period for a subject."""
    return f"{rule_id}|{subject}"


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{placeholders}``; an unknown one stays visible rather than failing a delivery."""
    text = string.Formatter().vformat(template, (), _Missing({k: _text(v) for k, v in values.items()}))
    return " ".join(text.split())


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def matches(rule: Rule, trigger: Trigger, *, event_active: bool) -> bool:
    """Return True when ``rule`` fires for ``trigger``."""
    if trigger.kind not in rule.triggers:
        return False
    if rule.during_event and not event_active:
        return False
    if trigger.kind == "spike.detected":
        if trigger.score < rule.min_score:
            return False
        names = {trigger.category.lower(), trigger.category_name.lower()}
        if rule.categories and not names.intersection(rule.categories):
            return False
        if rule.zips and trigger.zip not in rule.zips:
            return False
    return True


def evaluate(
    ruleset: RuleSet, trigger: Trigger, *, event_active: bool, base: dict[str, Any] | None = None
) -> list[Planned]:
    """Return the alerts ``trigger`` raises under ``ruleset``.

    Args:
        event_active: whether an event is declared (for ``during_event`` rules).
        base: placeholders every message can use (``event``, ``console_url``, ``time``).
    """
    planned = []
    for rule in ruleset.for_trigger(trigger.kind):
        if not matches(rule, trigger, event_active=event_active):
            continue
        values = {
            **(base or {}),
            **trigger.values,
            **trigger.shown,
            "rule": rule.id,
            "exercise": "EXERCISE — " if trigger.exercise else "",
        }
        message = render(rule.message, values)
        if trigger.exercise and not message.startswith("EXERCISE"):
            message = f"EXERCISE — {message}"
        planned.append(
            Planned(
                rule=rule,
                trigger=trigger,
                dedup_key=dedup_key(rule.id, trigger.subject),
                quiet_seconds=int(rule.quiet_minutes * 60),
                message=message,
                recipients=tuple(ruleset.expand(rule.recipients)),
                channels=rule.channels,
            )
        )
    return planned


def unread_push(push: dict[str, Any], rule: Rule, now: datetime) -> Trigger | None:
    """Return a ``push.unacknowledged`` trigger when ``push`` is old enough and under-read.

    ``push`` holds ``id, created_at (datetime), audience_size, acknowledged, pending (names),
    title, exercise``. A push to nobody never fires.
    """
    audience = int(push.get("audience_size") or 0)
    if audience <= 0 or now - push["created_at"] < timedelta(minutes=rule.after_minutes):
        return None
    acknowledged = int(push.get("acknowledged") or 0)
    share = acknowledged / audience
    if share >= rule.below_share:
        return None
    pending = list(push.get("pending") or [])
    return Trigger(
        kind="push.unacknowledged",
        subject=f"push:{push['id']}",
        values={
            "title": push.get("title", ""),
            "acknowledged": acknowledged,
            "audience_size": audience,
            "share": f"{share:.0%}",
            "pending": ", ".join(pending[:20])
            + (f" and {len(pending) - 20} more" if len(pending) > 20 else ""),
            "pending_count": len(pending),
            "after_minutes": _text(rule.after_minutes),
        },
        exercise=bool(push.get("exercise")),
    )


def due_steps(rule: Rule, raised_at: datetime, now: datetime, steps_done: int) -> list[tuple[int, Step]]:
    """Return the escalation steps (index, step) due by ``now`` and not yet taken."""
    return [
        (index, step)
        for index, step in enumerate(rule.escalation)
        if index >= steps_done and now - raised_at >= timedelta(minutes=step.after_minutes)
    ]


def backoff_seconds(attempt: int, *, base: float = 5.0, cap: float = 600.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): 5 s, 10 s, 20 s … at most 10 min."""
    return min(cap, base * 2 ** max(0, attempt - 1))
