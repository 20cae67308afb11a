"""What the CAP feed publishes: a message chain per active event and per live announcement.

Messages are published when the feed (or a document) is read: the subject's current
content is composed and fingerprinted, and a new message is appended only when the
fingerprint moved since the last one — ``Alert`` first, ``Update`` (naming every earlier
message in ``references``) when anything a reader sees changed, ``Cancel`` once the event
is stood down or the announcement ended. A published message is stored as sent and never
rewritten; the store appends under WATCH, so processes never publish the same revision twice.
Stood-down events and ended announcements stay in the feed (as their ``Cancel``) for
:data:`CANCEL_VISIBLE` so that pollers learn of the end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from crisis_console import clock
from crisis_console.cap import hazards
from crisis_console.cap.documents import Info, Message, Reference, cap_time, to_xml
from crisis_console.services import audit
from crisis_console.services.announcements import Announcement, Announcements
from crisis_console.services.events import DETAIL_HINTS, Event, Events
from crisis_console.services.lines import Line, Lines
from crisis_console.services.scripts import Scripts
from crisis_console.store import Store
from scripts_library.rendering import plain_text

CANCEL_VISIBLE = timedelta(hours=24)
ACTOR = "cap-feed"
KINDS = ("event", "announcement")
EXERCISE_NOTE = "EXERCISE: this message is part of a drill. Take no action."


@dataclass(frozen=True)
class CapSettings:
    """Who the messages come from, read from the app's settings by the web layer."""

    sender: str  # e.g. "crisis-console@311.example.gov"
    id_stem: str  # identifiers are "<stem>:<kind>:<id>:<revision>"
    sender_name: str
    area_desc: str  # used when an event names no area


@dataclass(frozen=True)
class Subject:
    """What a message chain is about: one event or one announcement."""

    kind: str
    id: int

    @property
    def key(self) -> str:
        """Return ``event:12`` (the store's and the audit trail's name for it)."""
        return f"{self.kind}:{self.id}"

    @property
    def slug(self) -> str:
        """Return ``event-12`` (its name in URLs)."""
        return f"{self.kind}-{self.id}"


@dataclass(frozen=True)
class Content:
    """What a subject's next message would say; ``open`` False means it is over."""

    open: bool
    status: str
    infos: tuple[Info, ...]
    note: str = ""

    def fingerprint(self) -> str:
        """Return a hash of everything a reader sees, to tell whether anything changed."""
        data = [self.status, self.note, [asdict(info) for info in self.infos]]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _World:
    """One read of everything the messages are composed from."""

    events: list[Event]
    announcements: list[Announcement]
    lines: dict[int, Line]
    scripts: dict[int, list[tuple[str, str, str]]]  # event id -> (language, title, plain body)


class CapFeed:
    """Compose, publish and read the CAP messages of one store."""

    def __init__(self, store: Store, settings: CapSettings):
        self.store = store
        self.settings = settings

    # --- reading -------------------------------------------------------------------

    def in_force(self, now: datetime | None = None) -> list[tuple[Subject, dict[str, Any]]]:
        """Publish what changed and return the latest message header of each subject in the
        feed (active ones, and those ended within :data:`CANCEL_VISIBLE`), newest first."""
        now = now or clock.now()
        world = self._world()
        subjects = [Subject("event", e.id) for e in world.events if _in_feed(e.status, e.closed_at, now)]
        subjects += [
            Subject("announcement", a.id)
            for a in world.announcements
            if _in_feed("active" if a.state == "active" else "closed", a.ended_at, now)
        ]
        found = [(subject, self._sync(subject, world, now)) for subject in subjects]
        published = [(subject, header) for subject, header in found if header is not None]
        return sorted(published, key=lambda pair: pair[1]["sent"], reverse=True)

    def latest(self, subject: Subject) -> tuple[dict[str, Any], bytes] | None:
        """Publish the subject's change if any; return its newest header and document."""
        header = self._sync(subject, self._world(), clock.now())
        if header is None:
            return None
        document = self.store.cap.document(subject.key, header["revision"])
        return (header, document) if document is not None else None

    def revision(self, subject: Subject, revision: int) -> bytes | None:
        """Return one message as it was published, or None."""
        return self.store.cap.document(subject.key, revision)

    # --- publishing ------------------------------------------------------------------

    def _sync(self, subject: Subject, world: _World, now: datetime) -> dict[str, Any] | None:
        """Append the subject's next message if its content changed; return the newest header."""
        content = self._content(subject, world)

        def decide(history: list[dict[str, Any]]) -> Any:
            last = history[-1] if history else None
            if content is None or (last is not None and last["msg_type"] == "Cancel"):
                return None
            if not content.open:
                if last is None:
                    return None  # ended before anyone was told: there is nothing to cancel
                msg_type = "Cancel"
            elif last is not None and last["fingerprint"] == content.fingerprint():
                return None
            else:
                msg_type = "Update" if last else "Alert"
            return self._message(subject, content, msg_type, history, now)

        return self.store.cap.publish(subject.key, decide)

    def _message(
        self, subject: Subject, content: Content, msg_type: str, history: list[dict[str, Any]], now: datetime
    ) -> tuple[dict[str, Any], bytes, audit.AuditEntry]:
        revision = len(history) + 1
        message = Message(
            identifier=f"{self.settings.id_stem}:{subject.kind}:{subject.id}:{revision}",
            sender=self.settings.sender,
            sent=cap_time(now),
            status=content.status,
            msg_type=msg_type,
            infos=content.infos,
            note=content.note,
            references=tuple(Reference(h["sender"], h["identifier"], h["sent"]) for h in history),
        )
        first = content.infos[0]
        header = {
            "revision": revision,
            "identifier": message.identifier,
            "sender": message.sender,
            "sent": message.sent,
            "msg_type": msg_type,
            "status": message.status,
            "fingerprint": content.fingerprint(),
            "headline": first.headline,
            "event": first.event,
            "severity": first.severity,
            "area_desc": first.area_desc,
        }
        entry = audit.entry(
            ACTOR,
            "cap.published",
            subject.key,
            revision=revision,
            msg_type=msg_type,
            identifier=message.identifier,
        )
        return header, to_xml(message), entry

    # --- composing ---------------------------------------------------------------------

    def _world(self) -> _World:
        scripts = [s for s in Scripts(self.store).list() if s.event_id is not None and s.is_current()]
        versions = self.store.scripts.many_versions([(s.id, s.live_version) for s in scripts])  # type: ignore[misc]
        by_event: dict[int, list[tuple[str, str, str]]] = {}
        for script, version in zip(scripts, versions, strict=True):
            if version:
                by_event.setdefault(script.event_id, []).append(  # type: ignore[arg-type]
                    (script.language, version["title"], plain_text(version["body"]))
                )
        for texts in by_event.values():
            texts.sort()
        return _World(
            events=Events(self.store).list(),
            announcements=Announcements(self.store).list(),
            lines={line.id: line for line in Lines(self.store).list()},
            scripts=by_event,
        )

    def _content(self, subject: Subject, world: _World) -> Content | None:
        if subject.kind == "event":
            event = next((e for e in world.events if e.id == subject.id), None)
            if event is None or event.status == "draft":
                return None
            return self._event_content(event, world)
        announcement = next((a for a in world.announcements if a.id == subject.id), None)
        if (
            announcement is None
            or announcement.state not in ("active", "ended")
            or not announcement.activated_at
        ):
            return None
        return self._announcement_content(announcement, world)

    def _event_content(self, event: Event, world: _World) -> Content:
        """Compose an event's message: one info per language its scripts and messages speak."""
        closing = event.status == "closed"
        scripts = world.scripts.get(event.id, [])
        heard = [
            (a, world.lines[a.line_id])
            for a in world.announcements
            if a.state == "active"
            and a.line_id in world.lines
            and _is_test(world.lines[a.line_id]) == event.exercise
        ]
        languages = _languages(
            ["en", *(lang for lang, _t, _b in scripts), *(lang for a, _ in heard for lang in a.messages)]
        )
        infos = []
        for language in languages:
            description = [
                f"{hazards.EVENT_TEXT[event.kind]} declared: {event.name}.",
                *_detail_lines(event.details),
            ]
            if closing:
                description.append(
                    f"This event was stood down at {cap_time(clock.parse_iso(event.closed_at))}."
                )
            else:
                for announcement, line in heard:
                    text = announcement.messages.get(language) or next(
                        iter(announcement.messages.values()), ""
                    )
                    description.append(f"Callers to {line.name} ({line.number}) hear: {text}")
            instruction = "\n\n".join(f"{title}\n{body}" for lang, title, body in scripts if lang == language)
            infos.append(
                Info(
                    language=language,
                    categories=hazards.CATEGORIES.get(event.kind, ("Other",)),
                    event=hazards.EVENT_TEXT.get(event.kind, "Emergency"),
                    response_types=("AllClear",) if closing else (),
                    urgency="Past" if closing else _urgency(event.severity),
                    severity=hazards.SEVERITY_TO_CAP.get(event.severity, "Unknown"),
                    certainty="Observed",
                    event_codes=(("crisis-console:hazard", event.kind),),
                    effective=cap_time(clock.parse_iso(event.declared_at)) if event.declared_at else "",
                    sender_name=self.settings.sender_name,
                    headline=_headline(event.name, exercise=event.exercise, closing=closing),
                    description="\n".join(description),
                    instruction="" if closing else instruction,
                    web=_web(event.details.get("website", "")),
                    contact=event.details.get("hotline", ""),
                    area_desc="; ".join(event.areas) or self.settings.area_desc,
                )
            )
        return Content(
            open=not closing,
            status="Exercise" if event.exercise else "Actual",
            infos=tuple(infos),
            note=EXERCISE_NOTE if event.exercise else "",
        )

    def _announcement_content(self, announcement: Announcement, world: _World) -> Content:
        """Compose an announcement's message: what callers hear, one info per language.

        Its hazard is that of the newest active event of the same kind of line (drills run
        on test lines); a test line's message outside any drill is a CAP ``Test``.
        """
        line = world.lines.get(announcement.line_id)
        test_line = bool(line and _is_test(line))
        context = next((e for e in world.events if e.status == "active" and e.exercise == test_line), None)
        closing = announcement.state == "ended"
        status = "Actual" if not test_line else "Exercise" if context else "Test"
        line_name = f"{line.name} ({line.number})" if line else f"line {announcement.line_id}"
        infos = []
        for language, text in announcement.messages.items():
            infos.append(
                Info(
                    language=language,
                    categories=hazards.CATEGORIES[context.kind] if context else ("Other",),
                    event=f"{hazards.EVENT_TEXT[context.kind] if context else 'Public Information'} (311 phone message)",
                    urgency="Past" if closing else _urgency(context.severity) if context else "Unknown",
                    severity=hazards.SEVERITY_TO_CAP[context.severity] if context else "Unknown",
                    certainty="Observed" if context else "Unknown",
                    effective=_time(announcement.starts_at or announcement.activated_at),
                    expires=_time(announcement.ends_at),
                    sender_name=self.settings.sender_name,
                    headline=_headline(
                        f"311 phone message on {line_name}", exercise=status == "Exercise", closing=closing
                    ),
                    description=f"Callers to {line_name} hear: {text}",
                    contact=line.number if line else "",
                    area_desc=("; ".join(context.areas) if context else "") or self.settings.area_desc,
                )
            )
        return Content(
            open=not closing,
            status=status,
            infos=tuple(infos),
            note=EXERCISE_NOTE if status == "Exercise" else "",
        )


def parse_slug(slug: str) -> tuple[Subject, int | None] | None:
    """Read ``event-12`` (latest) or ``event-12-3`` (revision 3); None if it is neither."""
    parts = slug.split("-")
    if (
        len(parts) not in (2, 3)
        or parts[0] not in KINDS
        or not all(p.isdigit() and len(p) < 10 for p in parts[1:])
    ):
        return None
    revision = int(parts[2]) if len(parts) == 3 else None
    return Subject(parts[0], int(parts[1])), revision


def _in_feed(status: str, ended_at: str, now: datetime) -> bool:
    """Return whether a subject belongs in the feed: active, or ended a short while ago."""
    if status == "active":
        return True
    if status != "closed" or not ended_at:
        return False
    return now - clock.parse_iso(ended_at) <= CANCEL_VISIBLE


def _is_test(line: Line) -> bool:
    """Return whether a line takes drill calls only (the flag was ``test_line``, now ``test``)."""
    return bool(getattr(line, "test", getattr(line, "test_line", False)))


def _urgency(severity: str) -> str:
    return "Immediate" if severity in ("severe", "extreme") else "Expected"


def _headline(text: str, *, exercise: bool, closing: bool) -> str:
    prefix = ("EXERCISE: " if exercise else "") + ("Ended: " if closing else "")
    return prefix + text


def _languages(candidates: Iterable[str]) -> list[str]:
    """Return the distinct languages in first-seen order."""
    return list(dict.fromkeys(candidates))


def _detail_lines(details: dict[str, str]) -> list[str]:
    """Return the event's details a reader needs (not the inbox's ``cap_*`` provenance)."""
    ordered = [k for k in DETAIL_HINTS if k in details] + sorted(
        k for k in details if k not in DETAIL_HINTS and not k.startswith("cap_")
    )
    return [f"{key.replace('_', ' ').capitalize()}: {details[key]}" for key in ordered if details[key]]


def _web(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else ""


def _time(value: str) -> str:
    return cap_time(clock.parse_iso(value)) if value else ""
