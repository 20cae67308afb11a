"""Phone lines: a Twilio number, its normal routing, and the languages callers can choose."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from crisis_console import clock
from crisis_console.services import audit, signals, validation
from crisis_console.services.errors import Conflict, NotFound, ValidationError
from crisis_console.store import Store
from crisis_console.store.ivr import LineBusy, NumberTaken

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
ROUTE_TYPES = ("dial", "enqueue", "redirect")
#: Languages a line can offer, with the Twilio ``<Say>`` language used for each.
#: How each offered language is named to the people writing for it: its own name, and the
#: English one where they differ.
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Español (Spanish)",
    "fr": "Français (French)",
    "ht": "Kreyòl ayisyen (Haitian Creole)",
    "pt": "Português (Portuguese)",
    "zh": "中文 (Chinese)",
    "vi": "Tiếng Việt (Vietnamese)",
    "ru": "Русский (Russian)",
    "ar": "العربية (Arabic)",
}


def language_name(code: str) -> str:
    """Return a language's name for people (the code itself for one not listed)."""
    return LANGUAGE_NAMES.get(code, code)


SAY_LANGUAGES = {
    "en": "en-US",
    "es": "es-US",
    "fr": "fr-FR",
    "ht": "fr-FR",
    "pt": "pt-BR",
    "zh": "cmn-CN",
    "vi": "vi-VN",
    "ru": "ru-RU",
    "ar": "arb",
}


@dataclass(frozen=True)
class Line:
    """A phone line."""

    id: int
    number: str
    name: str
    route: dict[str, str]
    languages: list[str] = field(default_factory=lambda: ["en"])
    #: A test line takes drill calls only: exercise announcements may play only here.
    test: bool = False
    created_by: str = ""
    created_at: str = ""

    def public(self) -> dict[str, Any]:
        """Return the line as the API shows it."""
        return asdict(self)


def line_from_dict(data: Mapping[str, Any]) -> Line:
    """Rebuild a line from :meth:`Line.public` output (the last-known-state file)."""
    data = {"test": bool(data.get("test_line")), **data}  # files written before the rename
    return Line(**{k: data[k] for k in Line.__dataclass_fields__ if k in data})


def _from_fields(fields: dict[str, str]) -> Line:
    return Line(
        id=int(fields["id"]),
        number=fields["number"],
        name=fields.get("name", ""),
        route=json.loads(fields.get("route") or "{}"),
        languages=json.loads(fields.get("languages") or '["en"]'),
        test=fields.get("test_line") == "1",
        created_by=fields.get("created_by", ""),
        created_at=fields.get("created_at", ""),
    )


def clean_route(value: Any) -> dict[str, str]:
    """Validate a line's normal routing, naming ``route`` or ``route.<field>`` on error."""
    if not isinstance(value, dict):
        raise ValidationError(
            "route must be an object with a type: dial, enqueue or redirect.", field="route"
        )
    kind = value.get("type")
    if kind not in ROUTE_TYPES:
        raise ValidationError("route.type must be one of: dial, enqueue, redirect.", field="route.type")
    route = {"type": kind}
    if kind == "dial":
        number = str(value.get("number") or "").strip()
        if not E164_RE.match(number) and not re.fullmatch(r"sip:\S+", number):
            raise ValidationError(
                "route.number must be an E.164 number such as +16175550100.", field="route.number"
            )
        route["number"] = number
    elif kind == "enqueue":
        queue = str(value.get("queue") or "").strip()
        if not queue or len(queue) > 64:
            raise ValidationError("route.queue must name a queue (up to 64 characters).", field="route.queue")
        route["queue"] = queue
        hold = str(value.get("hold_music_url") or "").strip()
        if hold:
            route["hold_music_url"] = _url(hold, "route.hold_music_url")
    else:
        route["url"] = _url(str(value.get("url") or "").strip(), "route.url")
    return route


def _flag(data: Mapping[str, Any], name: str) -> bool:
    """Read a yes/no field (JSON boolean or a form checkbox), also under its older name."""
    value = data.get(name, data.get(f"{name}_line", False))
    if value in (True, "1", "true", "on"):
        return True
    if value in (False, None, "", "0", "false", "off"):
        return False
    raise ValidationError(f"{name} must be true or false.", field=name)


def _url(value: str, field_name: str) -> str:
    if not re.match(r"^https?://\S+$", value) or len(value) > 500:
        raise ValidationError(f"{field_name} must be an http(s) URL.", field=field_name)
    return value


def _settings(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """Return the stored fields of a line's settings in ``data`` (checked, naming the field)."""
    fields: dict[str, str] = {}
    if "name" in names:
        fields["name"] = validation.text(data, "name", max_length=80)
    if "route" in names:
        fields["route"] = json.dumps(clean_route(data.get("route")))
    if "languages" in names:
        languages = validation.text_list(data, "languages") or ["en"]
        unknown = [lang for lang in languages if lang not in SAY_LANGUAGES]
        if unknown:
            raise ValidationError(
                f"languages: {unknown[0]!r} is not offered; use {', '.join(SAY_LANGUAGES)}.",
                field="languages",
            )
        fields["languages"] = json.dumps(list(dict.fromkeys(languages)))
    if "test" in names:
        fields["test_line"] = "1" if _flag(data, "test") else "0"
    return fields


class Lines:
    """The phone-line rules over a store."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, data: Mapping[str, Any], *, actor: str) -> Line:
        """Create a line ``{number, name, route, languages?, test?}`` (``test_line`` is read as ``test``)."""
        number = validation.text(data, "number", max_length=20).replace(" ", "")
        if not E164_RE.match(number):
            raise ValidationError("number must be in E.164 form, such as +16175550100.", field="number")
        fields = {
            "number": number,
            **_settings(data, ("name", "route", "languages", "test")),
            "created_by": actor,
            "created_at": clock.iso(),
        }
        entry = audit.entry(actor, "line.created", "line", number=number, name=fields["name"])
        try:
            line_id = self.store.lines.create_line(fields, entry)
        except NumberTaken:
            raise Conflict(
                f"Another line already uses {number}.", field="number", code="number_taken"
            ) from None
        return self._announce(self.require(line_id), "created")

    def update(self, line_id: int | str, data: Mapping[str, Any], *, actor: str) -> Line:
        """Change a line's ``name``, ``route``, ``languages`` or ``test`` flag (not its number).

        A test line playing a drill's announcement cannot become a live line: the drill would
        reach real callers.
        """
        from crisis_console.services.announcements import Announcements

        unknown = sorted(set(data) - {"name", "route", "languages", "test", "test_line"})
        if unknown:
            raise ValidationError(
                f"{unknown[0]} cannot be changed (add a new line for a new number).", field=unknown[0]
            )
        line = self.require(line_id)
        if not data:
            raise ValidationError("Send at least one of name, route, languages or test.", field="body")
        wanted = {*data, *(("test",) if "test_line" in data else ())}
        updates = _settings(
            data, tuple(name for name in ("name", "route", "languages", "test") if name in wanted)
        )
        if updates.get("test_line") == "0" and line.test:
            playing = Announcements(self.store).current(line.id)
            if playing is not None and playing.exercise:
                raise Conflict(
                    "A drill's announcement is live on this line: end it before making the line live.",
                    field="test",
                    code="exercise_on_live_line",
                )

        def decide(current: dict[str, str]) -> tuple[dict[str, str], audit.AuditEntry]:
            changed = {k: v for k, v in updates.items() if current.get(k) != v}
            return changed, audit.entry(actor, "line.updated", f"line:{line.id}", **changed)

        self.store.lines.change(line.id, decide, lambda pipe: pipe.incr(self.store.keys.ivr_version()))
        return self._announce(self.require(line.id), "updated")

    def _announce(self, line: Line, what: str) -> Line:
        """Tell this store's subscribers (the phone line's fail-safe state among them)."""
        signals.send(signals.line_changed, self.store, what, line=line.public())
        return line

    def busy(self, lines: list[Line]) -> set[int]:
        """Return the ids of the lines an announcement is active on (they cannot be deleted)."""
        return {line.id for line in lines if self.store.announcements.active_id(line.id)}

    def delete(self, line_id: int | str, *, actor: str) -> Line:
        """Delete a line (its number is free again); refused while an announcement is active on it."""
        line = self.require(line_id)
        entry = audit.entry(actor, "line.deleted", f"line:{line.id}", number=line.number, name=line.name)
        try:
            self.store.lines.delete_line(line.id, line.number, entry)
        except LineBusy:
            raise Conflict(
                f"An announcement is active on {line.name or line.number}: end it before deleting the line.",
                field="line_id",
                code="announcement_active",
            ) from None
        return self._announce(line, "deleted")

    def get(self, line_id: int | str) -> Line | None:
        """Return a line, or None."""
        fields = self.store.lines.get(line_id)
        return _from_fields(fields) if fields else None

    def require(self, line_id: int | str) -> Line:
        """Return a line or raise NotFound."""
        line = self.get(line_id)
        if line is None:
            raise NotFound(f"No line with id {line_id}.", field="line_id")
        return line

    def by_number(self, number: str) -> Line | None:
        """Return the line a call's ``To`` number belongs to, or None."""
        line_id = self.store.lines.id_for_number((number or "").strip())
        return self.get(line_id) if line_id else None

    def list(self) -> list[Line]:
        """Return every line, oldest first."""
        return [_from_fields(fields) for fields in self.store.lines.all(newest_first=False)]
