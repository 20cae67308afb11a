"""Alert rules: what operators write in ``alerts/rules/*.toml``, loaded and checked.

A rule file holds ``[[rule]]`` tables and an optional ``[groups]`` table naming lists of
recipients. Every mistake is reported at load time with the file and line, because a rule
that silently never fires is found out at 3 a.m. in a storm::

    [groups]
    eoc = ["user:duty_officer", "user:pio", "phone:+16175550100"]

    [[rule]]
    id = "spike-to-eoc"
    trigger = "spike.detected"
    during_event = true
    min_score = 8
    recipients = ["group:eoc"]
    channels = ["sms", "console"]
    message = "Spike: {category} {area} — {observed} vs {expected} usual (score {score})."
    quiet_minutes = 30

      [[rule.escalation]]
      after_minutes = 10
      recipients = ["role:manager"]
      channels = ["sms"]

Pure Python (standard library only): no Flask, no Redis.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Triggers and the placeholders their messages may use.
TRIGGERS: dict[str, tuple[str, ...]] = {
    "spike.detected": ("category", "category_code", "area", "zip", "observed", "expected", "score", "since"),
    "event.declared": ("name", "kind", "severity", "areas", "what"),
    "event.stood_down": ("name", "kind", "severity", "areas", "what"),
    "announcement.activated": ("line", "number", "text", "what"),
    "announcement.ended": ("line", "number", "text", "what"),
    "push.unacknowledged": (
        "title",
        "acknowledged",
        "audience_size",
        "share",
        "pending",
        "pending_count",
        "after_minutes",
    ),
}
#: Placeholders every message may use.
COMMON_PLACEHOLDERS = ("exercise", "event", "console_url", "rule", "time")
CHANNELS = ("console", "sms", "email", "webhook")
RECIPIENT_KINDS = ("user", "role", "team", "phone", "email", "group")
ROLES = ("admin", "manager", "agent", "stakeholder")
PHONE_RE = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_QUIET_MINUTES = 30


class RuleError(ValueError):
    """A rule file is wrong; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line, self.reason = str(path), line, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Step:
    """Who else to notify when an alert is still unacknowledged after a delay."""

    after_minutes: float
    recipients: tuple[str, ...]
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    """One alert rule."""

    id: str
    triggers: tuple[str, ...]
    recipients: tuple[str, ...]
    channels: tuple[str, ...]
    message: str
    description: str = ""
    during_event: bool = False
    min_score: float = 0.0
    categories: tuple[str, ...] = ()
    zips: tuple[str, ...] = ()
    after_minutes: float = 5.0
    below_share: float = 0.9
    quiet_minutes: float = DEFAULT_QUIET_MINUTES
    webhook_url: str = ""
    escalation: tuple[Step, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class RuleSet:
    """Every rule and recipient group loaded from a folder."""

    rules: tuple[Rule, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def for_trigger(self, trigger: str) -> list[Rule]:
        """Return the rules listening to ``trigger``."""
        return [rule for rule in self.rules if trigger in rule.triggers]

    def expand(self, recipients: tuple[str, ...]) -> list[str]:
        """Return the recipients with every ``group:`` replaced by its members (order kept, no repeats)."""
        out: list[str] = []
        for recipient in recipients:
            kind, _, name = recipient.partition(":")
            members = self.groups.get(name, ()) if kind == "group" else (recipient,)
            out += [m for m in members if m not in out]
        return out


class _Lines:
    """Finds the line of a rule (and of a key inside it) in the file's text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.starts = [i + 1 for i, line in enumerate(self.lines) if re.match(r"^\s*\[\[rule\]\]", line)]

    def of(self, index: int, key: str | None = None) -> int | None:
        if index >= len(self.starts):
            return None
        start = self.starts[index]
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.lines) + 1
        if key:
            pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
            for number in range(start, end):
                if pattern.match(self.lines[number - 1]):
                    return number
        return start

    def of_group(self, name: str) -> int | None:
        pattern = re.compile(rf"^\s*{re.escape(name)}\s*=")
        return next((i + 1 for i, line in enumerate(self.lines) if pattern.match(line)), None)


def load_folder(folder: Path | str) -> RuleSet:
    """Load every ``*.toml`` in ``folder`` (sorted); raise :class:`RuleError` on the first mistake."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RuleError(folder, None, "no such folder of alert rules")
    rules: list[Rule] = []
    groups: dict[str, tuple[str, ...]] = {}
    for path in sorted(folder.glob("*.toml")):
        file_rules, file_groups = load_text(path.read_text(encoding="utf-8"), path)
        for name, members in file_groups.items():
            if name in groups:
                raise RuleError(path, None, f"group {name!r} is defined in two files")
            groups[name] = members
        rules += file_rules
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.id in seen:
            raise RuleError(rule.source, None, f"rule id {rule.id!r} is also used in {seen[rule.id]}")
        seen[rule.id] = rule.source
    ruleset = RuleSet(tuple(rules), groups)
    for rule in rules:
        for recipient in (*rule.recipients, *(r for step in rule.escalation for r in step.recipients)):
            kind, _, name = recipient.partition(":")
            if kind == "group" and name not in groups:
                raise RuleError(rule.source, None, f"rule {rule.id!r} names unknown group {name!r}")
    return ruleset


def load_text(text: str, path: Path | str = "<rules>") -> tuple[list[Rule], dict[str, tuple[str, ...]]]:
    """Parse one rule file's text; return its rules and groups."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise RuleError(path, int(match.group(1)) if match else None, f"not valid TOML: {exc}") from None
    lines = _Lines(text)
    unknown = set(data) - {"rule", "groups"}
    if unknown:
        raise RuleError(
            path, None, f"unknown top-level table {sorted(unknown)[0]!r} (use [[rule]] and [groups])"
        )
    groups: dict[str, tuple[str, ...]] = {}
    raw_groups = data.get("groups", {})
    if not isinstance(raw_groups, dict):
        raise RuleError(path, lines.of_group("groups"), "[groups] must be a table of lists")
    for name, members in raw_groups.items():
        where = lines.of_group(name)
        if not ID_RE.match(name):
            raise RuleError(path, where, f"group name {name!r} must be lower-case letters, digits, - or _")
        if not isinstance(members, list) or not members:
            raise RuleError(path, where, f"group {name!r} must be a non-empty list of recipients")
        for member in members:
            _check_recipient(member, path, where, allow_group=False)
        groups[name] = tuple(members)
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RuleError(path, None, "rules are written as [[rule]] tables")
    rules = [_rule(raw, index, lines, path) for index, raw in enumerate(raw_rules)]
    return rules, groups


_RULE_KEYS = {
    "id",
    "description",
    "trigger",
    "recipients",
    "channels",
    "message",
    "during_event",
    "min_score",
    "categories",
    "zips",
    "after_minutes",
    "below_share",
    "quiet_minutes",
    "webhook_url",
    "escalation",
}


def _rule(raw: dict[str, Any], index: int, lines: _Lines, path: Path | str) -> Rule:
    def fail(key: str | None, message: str) -> RuleError:
        return RuleError(path, lines.of(index, key), message)

    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_RULE_KEYS))})")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not ID_RE.match(rule_id):
        raise fail("id", "id is required: lower-case letters, digits, - or _ (at most 63)")
    triggers = raw.get("trigger")
    triggers = [triggers] if isinstance(triggers, str) else triggers
    if not isinstance(triggers, list) or not triggers:
        raise fail("trigger", f"rule {rule_id!r}: trigger is required, one of {', '.join(TRIGGERS)}")
    for trigger in triggers:
        if trigger not in TRIGGERS:
            raise fail(
                "trigger", f"rule {rule_id!r}: unknown trigger {trigger!r} (one of {', '.join(TRIGGERS)})"
            )
    recipients = _recipients(raw.get("recipients"), fail, "recipients", rule_id)
    channels = _channels(raw.get("channels"), fail, "channels", rule_id)
    message = raw.get("message")
    if not isinstance(message, str) or not message.strip():
        raise fail("message", f"rule {rule_id!r}: message is required")
    allowed = set(COMMON_PLACEHOLDERS).union(*(TRIGGERS[t] for t in triggers))
    for _, name, _, _ in string.Formatter().parse(message):
        if name is not None and name not in allowed:
            raise fail(
                "message",
                f"rule {rule_id!r}: message uses {{{name}}}, not known for {', '.join(triggers)} "
                f"(known: {', '.join(sorted(allowed))})",
            )
    webhook_url = raw.get("webhook_url", "")
    needs_url = "webhook" in channels or any(
        "webhook" in step.get("channels", []) for step in raw.get("escalation", []) if isinstance(step, dict)
    )
    if needs_url and not (isinstance(webhook_url, str) and webhook_url.startswith(("http://", "https://"))):
        raise fail("webhook_url", f'rule {rule_id!r}: the webhook channel needs webhook_url = "https://…"')
    steps = []
    escalation = raw.get("escalation", [])
    if not isinstance(escalation, list):
        raise fail("escalation", f"rule {rule_id!r}: escalation steps are written as [[rule.escalation]]")
    for step in escalation:
        if not isinstance(step, dict) or set(step) - {"after_minutes", "recipients", "channels"}:
            raise fail(
                "escalation", f"rule {rule_id!r}: an escalation step has after_minutes, recipients, channels"
            )
        steps.append(
            Step(
                _number(step.get("after_minutes"), fail, "after_minutes", rule_id, low=0.5, high=24 * 60),
                _recipients(step.get("recipients"), fail, "recipients", rule_id),
                _channels(step.get("channels", ["sms"]), fail, "channels", rule_id),
            )
        )
    for key in ("during_event",):
        if not isinstance(raw.get(key, False), bool):
            raise fail(key, f"rule {rule_id!r}: {key} must be true or false")
    for key in ("categories", "zips"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail(key, f"rule {rule_id!r}: {key} must be a list of strings")
    return Rule(
        id=rule_id,
        triggers=tuple(triggers),
        recipients=recipients,
        channels=channels,
        message=message.strip(),
        description=str(raw.get("description", "")),
        during_event=raw.get("during_event", False),
        min_score=_number(raw.get("min_score", 0), fail, "min_score", rule_id, low=0, high=1000),
        categories=tuple(c.lower() for c in raw.get("categories", [])),
        zips=tuple(raw.get("zips", [])),
        after_minutes=_number(
            raw.get("after_minutes", 5), fail, "after_minutes", rule_id, low=0.5, high=24 * 60
        ),
        below_share=_number(raw.get("below_share", 0.9), fail, "below_share", rule_id, low=0.01, high=1),
        quiet_minutes=_number(
            raw.get("quiet_minutes", DEFAULT_QUIET_MINUTES),
            fail,
            "quiet_minutes",
            rule_id,
            low=0,
            high=7 * 24 * 60,
        ),
        webhook_url=webhook_url,
        escalation=tuple(sorted(steps, key=lambda s: s.after_minutes)),
        source=str(path),
    )


def _number(value: Any, fail: Any, key: str, rule_id: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise fail(key, f"rule {rule_id!r}: {key} must be a number from {low:g} to {high:g}")
    return float(value)


def _recipients(value: Any, fail: Any, key: str, rule_id: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise fail(key, f'rule {rule_id!r}: {key} must be a non-empty list like ["role:manager"]')
    for recipient in value:
        try:
            _check_recipient(recipient, "", None, allow_group=True)
        except RuleError as exc:
            raise fail(key, f"rule {rule_id!r}: {exc.reason}") from None
    return tuple(value)


def _channels(value: Any, fail: Any, key: str, rule_id: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(c not in CHANNELS for c in value):
        raise fail(key, f"rule {rule_id!r}: {key} must list some of {', '.join(CHANNELS)}")
    return tuple(dict.fromkeys(value))


def _check_recipient(value: Any, path: Path | str, line: int | None, *, allow_group: bool) -> None:
    kind, _, name = str(value).partition(":") if isinstance(value, str) else ("", "", "")
    kinds = RECIPIENT_KINDS if allow_group else tuple(k for k in RECIPIENT_KINDS if k != "group")
    if kind not in kinds or not name:
        raise RuleError(
            path, line, f"recipient {value!r} must look like {', '.join(k + ':…' for k in kinds)}"
        )
    if kind == "role" and name not in ROLES:
        raise RuleError(path, line, f"recipient {value!r}: no such role (one of {', '.join(ROLES)})")
    if kind == "phone" and not PHONE_RE.match(name):
        raise RuleError(path, line, f"recipient {value!r}: phone numbers are E.164, like phone:+16175550100")
    if kind == "email" and not EMAIL_RE.match(name):
        raise RuleError(path, line, f"recipient {value!r} is not an e-mail address")
