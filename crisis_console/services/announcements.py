"""Surge announcements: what callers hear on a line before they reach an agent.

``draft → in_review → approved → active → ended``, under the same two-person rule as
scripts. A line has at most one active announcement: activating another ends it. An
active announcement plays only between its ``starts_at`` and ``ends_at``; the webhook
compares times itself, so a schedule holds even when no worker runs.

Drills: an announcement for an exercise event, or written while the only active events are
exercises, is an *exercise* announcement and may only be activated on a test line, so a drill
never reaches real callers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from crisis_console import clock
from crisis_console.services import audit, validation
from crisis_console.services.errors import Conflict, Forbidden, NotFound, ValidationError
from crisis_console.services.events import Events
from crisis_console.services.lines import Lines
from crisis_console.services.milestones import Milestones
from crisis_console.store import Store

STATES = ("draft", "in_review", "approved", "active", "ended")
#: action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({"draft"}), "in_review"),
    "approve": (frozenset({"in_review"}), "approved"),
    "return": (frozenset({"in_review"}), "draft"),
    "activate": (frozenset({"approved"}), "active"),
    "end": (frozenset({"draft", "in_review", "approved", "active"}), "ended"),
}
#: Twilio's <Say> takes at most 4,096 characters; keep a margin for the menu prompt.
MAX_MESSAGE = 4000
#: Spoken words per second for the length estimate (about 150 words a minute).
WORDS_PER_SECOND = 2.5
#: Longer than this, callers start hanging up before they hear the end.
LONG_SECONDS = 30
VOICE_RE = re.compile(r"^(man|woman|alice|(Polly|Google)\.[A-Za-z0-9-]+)$")
DEFAULT_VOICES = {"en": "Polly.Joanna", "es": "Polly.Lupe", "fr": "Polly.Lea", "pt": "Polly.Camila"}


def spoken_seconds(text: str) -> int:
    """Estimate how long ``text`` takes to say, in whole seconds."""
    words = len(re.findall(r"\w+", text or ""))
    return round(words / WORDS_PER_SECOND)


@dataclass(frozen=True)
class Announcement:
    """A surge announcement."""

    id: int
    line_id: int
    messages: dict[str, str]
    state: str
    voice: str = ""
    audio_url: str = ""
    starts_at: str = ""
    ends_at: str = ""
    authors: list[str] = field(default_factory=list)
    submitted_by: str = ""
    approved_by: str = ""
    activated_by: str = ""
    activated_at: str = ""
    started_at: str = ""
    ended_by: str = ""
    ended_at: str = ""
    event_id: int | None = None
    exercise: bool = False
    created_by: str = ""
    created_at: str = ""

    def voice_for(self, language: str) -> str:
        """Return the voice that speaks ``language``: the chosen one for the first language."""
        first = next(iter(self.messages), "en")
        if self.voice and language == first:
            return self.voice
        return DEFAULT_VOICES.get(language, "woman")

    def playing(self, now: datetime | None = None) -> bool:
        """Return whether callers hear it at ``now``: active and inside its schedule."""
        now = now or clock.now()
        if self.state != "active":
            return False
        if self.starts_at and clock.parse_iso(self.starts_at) > now:
            return False
        return not (self.ends_at and clock.parse_iso(self.ends_at) <= now)

    def public(self, now: datetime | None = None) -> dict[str, Any]:
        """Return the announcement as the API shows it, with length estimates and warnings."""
        seconds = {lang: spoken_seconds(text) for lang, text in self.messages.items()}
        warnings = [
            f"The {lang} message takes about {s} s to say; callers hang up on messages over {LONG_SECONDS} s."
            for lang, s in seconds.items()
            if s > LONG_SECONDS
        ]
        return {**asdict(self), "spoken_seconds": seconds, "warnings": warnings, "playing": self.playing(now)}


def announcement_from_dict(data: Mapping[str, Any]) -> Announcement:
    """Rebuild an announcement from :meth:`Announcement.public` output (the last-known-state file)."""
    return Announcement(**{k: data[k] for k in Announcement.__dataclass_fields__ if k in data})


def _from_fields(fields: dict[str, str]) -> Announcement:
    return Announcement(
        id=int(fields["id"]),
        line_id=int(fields["line_id"]),
        messages=json.loads(fields.get("messages") or "{}"),
        state=fields.get("state", "draft"),
        voice=fields.get("voice", ""),
        audio_url=fields.get("audio_url", ""),
        starts_at=fields.get("starts_at", ""),
        ends_at=fields.get("ends_at", ""),
        authors=json.loads(fields.get("authors") or "[]"),
        event_id=int(fields["event_id"]) if fields.get("event_id") else None,
        exercise=fields.get("exercise") == "1",
        **{
            k: fields.get(k, "")
            for k in ("submitted_by", "approved_by", "activated_by", "activated_at", "started_at")
        },
        **{k: fields.get(k, "") for k in ("ended_by", "ended_at", "created_by", "created_at")},
    )


class Announcements:
    """The announcement rules over a store."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, data: Mapping[str, Any], *, actor: str) -> Announcement:
        """Create a draft ``{line_id, messages, voice?, audio_url?, starts_at?, ends_at?, event_id?}``."""
        line = Lines(self.store).get(data.get("line_id") or "")
        if line is None:
            raise ValidationError("line_id must name an existing phone line.", field="line_id")
        messages = data.get("messages")
        if not isinstance(messages, dict) or not messages:
            raise ValidationError(
                'messages must be an object such as {"en": "…", "es": "…"}.', field="messages"
            )
        cleaned: dict[str, str] = {}
        for language, text in messages.items():
            if language not in line.languages:
                raise ValidationError(
                    f"messages.{language}: this line offers {', '.join(line.languages)}.",
                    field=f"messages.{language}",
                )
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_MESSAGE:
                raise ValidationError(
                    f"messages.{language} must be 1 to {MAX_MESSAGE} characters.",
                    field=f"messages.{language}",
                )
            cleaned[language] = " ".join(text.split())
        ordered = {lang: cleaned[lang] for lang in line.languages if lang in cleaned}
        voice = validation.text(data, "voice", required=False, max_length=40)
        if voice and not VOICE_RE.match(voice):
            raise ValidationError(
                "voice must be man, woman, alice or a Polly.* / Google.* voice.", field="voice"
            )
        audio_url = validation.text(data, "audio_url", required=False, max_length=500)
        if audio_url and not re.match(r"^https://\S+$", audio_url):
            raise ValidationError("audio_url must be an https URL Twilio can fetch.", field="audio_url")
        starts, ends = validation.moment(data, "starts_at"), validation.moment(data, "ends_at")
        if starts and ends and ends <= starts:
            raise ValidationError("ends_at must be after starts_at.", field="ends_at")
        event_id, exercise = self._event_of(data.get("event_id"))
        fields = {
            "line_id": str(line.id),
            "messages": json.dumps(ordered, ensure_ascii=False),
            "voice": voice,
            "audio_url": audio_url,
            "starts_at": clock.iso(starts) if starts else "",
            "ends_at": clock.iso(ends) if ends else "",
            "event_id": str(event_id) if event_id else "",
            "exercise": "1" if exercise else "0",
            "state": "draft",
            "authors": json.dumps([actor]),
            "created_by": actor,
            "created_at": clock.iso(),
        }
        record_id = self.store.announcements.new_id()
        entry = audit.entry(actor, "announcement.created", f"announcement:{record_id}", line=line.number)
        self.store.announcements.create(fields, entry, record_id=record_id)
        return self.require(record_id)

    def _event_of(self, value: Any) -> tuple[int | None, bool]:
        """Return the announcement's event (validated) and whether it is an exercise."""
        events = Events(self.store)
        if value in (None, ""):
            active = events.active()
            return None, bool(active) and all(e.exercise for e in active)
        event = events.get(value) if not isinstance(value, bool) and str(value).isdigit() else None
        if event is None:
            raise ValidationError("event_id must name an existing event.", field="event_id")
        return event.id, event.exercise

    def get(self, announcement_id: int | str) -> Announcement | None:
        """Return an announcement, or None."""
        fields = self.store.announcements.get(announcement_id)
        return _from_fields(fields) if fields else None

    def require(self, announcement_id: int | str) -> Announcement:
        """Return an announcement or raise NotFound."""
        found = self.get(announcement_id)
        if found is None:
            raise NotFound(f"No announcement with id {announcement_id}.", field="announcement_id")
        return found

    def list(self) -> list[Announcement]:
        """Return announcements, most recently changed first."""
        return [_from_fields(fields) for fields in self.store.announcements.all()]

    def current(self, line_id: int | str) -> Announcement | None:
        """Return the announcement activated on a line (playing or scheduled), or None."""
        active_id = self.store.announcements.active_id(line_id)
        found = self.get(active_id) if active_id else None
        return found if found is not None and found.state == "active" else None

    def act(
        self, announcement_id: int | str, action: str, *, actor: str
    ) -> tuple[Announcement, Announcement | None]:
        """Apply ``action``; return the announcement and the one it replaced on the line, if any."""
        if action not in TRANSITIONS:
            raise ValidationError(f"action must be one of: {', '.join(TRANSITIONS)}.", field="action")
        allowed, target = TRANSITIONS[action]
        replaced: Announcement | None = None
        current = self.require(announcement_id)
        if action == "activate":
            self._check_line(current)
            other = self.current(current.line_id)
            replaced = other if other is not None and other.id != current.id else None
        now = clock.iso()

        def decide(fields: dict[str, str]) -> tuple[dict[str, str], audit.AuditEntry]:
            if not fields:
                raise NotFound(f"No announcement with id {announcement_id}.", field="announcement_id")
            state = fields["state"]
            if state not in allowed:
                raise Conflict(
                    f"Cannot {action} an announcement that is {state.replace('_', ' ')} (state: {state}).",
                    field="state",
                    code="illegal_transition",
                )
            if action == "approve" and actor in json.loads(fields.get("authors") or "[]"):
                raise Forbidden(
                    "You wrote this announcement; another manager must approve it (two-person rule).",
                    code="two_person_rule",
                )
            updates = {"state": target}
            stamp = {
                "submit": "submitted_by",
                "approve": "approved_by",
                "activate": "activated_by",
                "end": "ended_by",
            }
            if action in stamp:
                updates[stamp[action]] = actor
            if action == "activate":
                updates["activated_at"] = now
            if action == "end":
                updates["ended_at"] = now
            details: dict[str, Any] = {"line_id": fields["line_id"]}
            if replaced is not None:
                details["replaced"] = replaced.id
            return updates, audit.entry(
                actor, f"announcement.{_PAST[action]}", f"announcement:{announcement_id}", **details
            )

        def also(pipe: Any) -> None:
            if action == "activate":
                self.store.announcements.set_active(pipe, current.line_id, current.id)
            elif action == "end" and self.store.announcements.active_id(current.line_id) == str(current.id):
                self.store.announcements.set_active(pipe, current.line_id, None)

        self.store.announcements.change(announcement_id, decide, also)
        if replaced is not None:
            # The replaced one ends as its own audited change, after the new one is live.
            self.store.announcements.change(
                replaced.id,
                lambda fields: (
                    {"state": "ended", "ended_by": actor, "ended_at": now},
                    audit.entry(
                        actor, "announcement.ended", f"announcement:{replaced.id}", replaced_by=current.id
                    ),
                ),
            )
        done = self.require(announcement_id)
        if action == "activate" and done.playing():
            self._live(done, clock.parse_iso(now))
        return done, (self.require(replaced.id) if replaced else None)

    def _check_line(self, announcement: Announcement) -> None:
        """Refuse to put an exercise announcement on a line real callers use."""
        line = Lines(self.store).require(announcement.line_id)
        if announcement.exercise and not line.test:
            raise Conflict(
                f"This announcement belongs to an exercise; {line.name or line.number} is a live line. "
                "Activate exercise announcements only on a test line.",
                field="line_id",
                code="exercise_on_live_line",
            )

    def _live(self, announcement: Announcement, at: datetime) -> None:
        """Record the ``announcement_live`` milestone for the events this announcement serves.

        Without an event it serves the active events of its own kind: a real announcement does
        not complete a drill's timing, nor a drill's a real event's.
        """
        if announcement.event_id is not None:
            event_ids = [announcement.event_id]
        else:
            event_ids = [e.id for e in Events(self.store).active() if e.exercise == announcement.exercise]
        Milestones(self.store).reached("announcement_live", at=at, event_ids=event_ids)

    def mark_started(self, announcement_id: int | str, *, actor: str) -> bool:
        """Record that a scheduled announcement began playing; False if already recorded."""

        def decide(fields: dict[str, str]) -> tuple[dict[str, str], audit.AuditEntry]:
            if fields.get("started_at") or fields.get("state") != "active":
                raise Conflict("Already started or no longer active.", field="state")
            return {"started_at": clock.iso()}, audit.entry(
                actor,
                "announcement.started",
                f"announcement:{announcement_id}",
                line_id=fields.get("line_id"),
            )

        try:
            self.store.announcements.change(announcement_id, decide)
        except Conflict:
            return False
        started = self.require(announcement_id)
        self._live(started, clock.parse_iso(started.starts_at) if started.starts_at else clock.now())
        return True

    def stats(self, announcement_id: int | str) -> dict[str, int]:
        """Return calls, heard, deflected and routed for an announcement."""
        self.require(announcement_id)
        return self.store.announcements.stats(announcement_id)


_PAST = {
    "submit": "submitted",
    "approve": "approved",
    "return": "returned",
    "activate": "activated",
    "end": "ended",
}
