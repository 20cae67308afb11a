"""What the CAP feed publishes: a message chain per active event and per live announcement.

Messages are published at the moment of change: whatever process makes a change sends its
domain signal, and the :func:`publisher` among the subscribers calls
:meth:`CapFeed.publish_changes`, so a message's ``sent`` is the time of the change. Reading the feed or a document syncs too,
as a safety net for a change whose publication failed (Redis flickered) and for changes made
by the clock alone (a scheduled announcement starting when no scheduler ran).

Each subject's current content is composed from public text only (the event, the approved
scripts' title, summary and body, what callers hear; never ``agent_notes``) and
fingerprinted; a new message is appended only when the fingerprint moved since the last
one: ``Alert`` first, ``Update`` (naming every earlier message in ``references``) when
anything a reader sees changed, ``Cancel`` once the event is stood down or the announcement
ended. A published message is stored as sent and never rewritten; the store appends under
WATCH and the content is composed inside that transaction, so processes never publish the
same revision twice nor a stale read over a newer one. Stood-down events and ended
announcements stay in the feed (with every revision, their ``Cancel`` last) for
:data:`CANCEL_VISIBLE` so that pollers learn of the end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from crisis_console import clock
from crisis_console.cap import hazards
from crisis_console.cap.documents import Info, Message, Reference, cap_time, safe_id, to_xml
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
#: ``<geocode>`` valueName of a US ZIP code. NWS and IPAWS name areas with ``SAME`` (FIPS
#: county) and ``UGC`` (NWS zone) codes; an event's areas are ZIP codes, which are neither,
#: so they are named for what they are, as CAP lets a sender name its own code system.
GEOCODE_ZIP = "ZIP"
ZIP_RE = re.compile(r"^\d{5}(?:-\d{4})?$")


@dataclass(frozen=True)
class CapSettings:
    """Who the messages come from and where the public page is, from the app's settings."""

    sender: str  # e.g. "crisis-console@311.example.gov"
    id_stem: str  # identifiers are "<stem>:<kind>:<id>:<revision>"
    sender_name: str
    area_desc: str  # used when an event names no area
    #: ``PUBLIC_BASE_URL``: ``<web>`` links to ``<base>/public/<event id>``; "" falls back
    #: to the event's own ``website`` detail.
    public_base_url: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CapSettings:
        """Read the settings from a Flask config (or any mapping of the same names)."""
        base = str(config.get("PUBLIC_BASE_URL") or "").rstrip("/")
        host = urlsplit(base).hostname or "localhost"
        prefix = str(config.get("CRISIS_KEY_PREFIX") or "cc")
        return cls(
            sender=config.get("CAP_SENDER") or f"crisis-console@{host}",
            id_stem=f"urn:crisis-console:{safe_id(host)}:{safe_id(prefix)}",
            sender_name=config.get("CAP_SENDER_NAME") or "311 contact centre",
            area_desc=config.get("CAP_AREA_DESC") or "311 service area",
            public_base_url=base if base.startswith(("http://", "https://")) else "",
        )

    def public_page(self, event_id: int) -> str:
        """Return the address of an event's public information page ("" without a base URL)."""
        return f"{self.public_base_url}/public/{event_id}" if self.public_base_url else ""


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
    #: ``(script id, version)`` of the approved scripts whose text it carries. Not part of
    #: the fingerprint: a new version that changes only agent notes publishes nothing.
    scripts: tuple[tuple[int, int], ...] = ()

    def fingerprint(self) -> str:
        """Return a hash of everything a reader sees, to tell whether anything changed."""
        data = [self.status, self.note, [asdict(info) for info in self.infos]]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Text:
    """The public text of one approved script version (never its agent notes)."""

    language: str
    title: str
    summary: str
    body: str  # plain text
    script_id: int
    version: int
    expires_at: str

    def instruction(self) -> str:
        """Return the text as CAP ``instruction``: title, key message, body."""
        return "\n".join(part for part in (self.title, self.summary, self.body) if part)


@dataclass(frozen=True)
class _World:
    """One read, at ``now``, of everything the messages are composed from."""

    now: datetime
    events: list[Event]
    announcements: list[Announcement]
    lines: dict[int, Line]
    scripts: dict[int, list[_Text]] = field(default_factory=dict)  # by event id


class CapFeed:
    """Compose, publish and read the CAP messages of one store."""

    def __init__(self, store: Store, settings: CapSettings):
        self.store = store
        self.settings = settings

    # --- publishing at the moment of change ---------------------------------------------

    def publish_changes(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Publish the next message of every subject whose content changed; return their headers.

        Call it after each change (the subscriber does): ``sent`` is ``now``, by default the
        current time. Safe to call from any number of processes at once, and as often as
        liked: an unchanged subject publishes nothing.
        """
        return [header for _subject, header, published in self._sync_all(now) if published]

    # --- reading -------------------------------------------------------------------

    def in_force(self, now: datetime | None = None) -> list[tuple[Subject, dict[str, Any]]]:
        """Publish what changed and return the latest message header of each subject in the
        feed (active ones, and those ended within :data:`CANCEL_VISIBLE`), newest first."""
        found = [(subject, header) for subject, header, _new in self._sync_all(now) if header]
        return sorted(found, key=_sent_order, reverse=True)

    def index(self, now: datetime | None = None) -> list[tuple[Subject, dict[str, Any]]]:
        """Publish what changed and return every message of each subject in the feed, newest
        first: all revisions of active subjects and of those ended lately, Cancels included."""
        found = [
            (subject, header)
            for subject, latest, _new in self._sync_all(now)
            if latest
            for header in self.store.cap.history(subject.key)
        ]
        return sorted(found, key=_sent_order, reverse=True)

    def latest(self, subject: Subject) -> tuple[dict[str, Any], bytes] | None:
        """Publish the subject's change if any; return its newest header and document."""
        header, _new = self._sync(subject, self._world(clock.now()))
        if header is None:
            return None
        document = self.store.cap.document(subject.key, header["revision"])
        return (header, document) if document is not None else None

    def revision(self, subject: Subject, revision: int) -> bytes | None:
        """Return one message as it was published, or None."""
        return self.store.cap.document(subject.key, revision)

    def status(self, event_id: int | str, now: datetime | None = None) -> dict[str, Any] | None:
        """Return what CAP says now about an event, without publishing; None if nothing yet.

        ``{"revision", "identifier", "slug", "sent", "msg_type", "scripts", "published_scripts",
        "up_to_date"}``. ``published_scripts`` ({script id: version}) are the versions the
        newest message was composed from. ``up_to_date`` is False when the event's public
        content has changed since (the next publish sends a new message); while it is True,
        ``scripts`` names the live versions, whose public text the message carries word for
        word (a version that changed only agent notes publishes nothing), else it is
        ``published_scripts``.
        """
        subject = Subject("event", int(event_id))
        last = self.store.cap.last(subject.key)
        if last is None:
            return None
        content = self._content(subject, self._world(now or clock.now()))
        published = {int(k): int(v) for k, v in (last.get("scripts") or {}).items()}
        up_to_date = _next_type(content, last) is None
        carried = dict(content.scripts) if up_to_date and content is not None and content.open else published
        return {
            "revision": last["revision"],
            "identifier": last["identifier"],
            "slug": f"{subject.slug}-{last['revision']}",
            "sent": last["sent"],
            "msg_type": last["msg_type"],
            "scripts": carried,
            "published_scripts": published,
            "up_to_date": up_to_date,
        }

    # --- publishing ------------------------------------------------------------------

    def _sync_all(self, now: datetime | None) -> list[tuple[Subject, dict[str, Any] | None, bool]]:
        """Sync every subject in the feed; return each with its newest header and whether it
        was published now."""
        world = self._world(now or clock.now())
        return [(subject, *self._sync(subject, world)) for subject in _subjects(world)]

    def _sync(self, subject: Subject, world: _World) -> tuple[dict[str, Any] | None, bool]:
        """Append the subject's next message if its content changed; return the newest header
        and whether this call published it."""
        last = self.store.cap.last(subject.key)
        if _next_type(self._content(subject, world), last) is None:
            return last, False  # nothing changed: no transaction needed
        published = False

        def decide(history: list[dict[str, Any]]) -> Any:
            nonlocal published
            published = False  # an attempt that lost the race to another process is retried
            # Composed again under WATCH: if another process publishes meanwhile, this runs
            # again over its message, and a read older than that one is never published.
            fresh = self._world(world.now)
            content = self._content(subject, fresh)
            msg_type = _next_type(content, history[-1] if history else None)
            if msg_type is None or content is None:
                return None
            published = True
            return self._message(subject, content, msg_type, history, fresh.now)

        header = self.store.cap.publish(subject.key, decide)
        return header, published

    def _message(
        self, subject: Subject, content: Content, msg_type: str, history: list[dict[str, Any]], now: datetime
    ) -> tuple[dict[str, Any], bytes, audit.AuditEntry]:
        revision = len(history) + 1
        sent = now
        if history:  # never earlier than a message it references (clocks of processes differ)
            sent = max(now, clock.parse_iso(history[-1]["sent"]))
        message = Message(
            identifier=f"{self.settings.id_stem}:{subject.kind}:{subject.id}:{revision}",
            sender=self.settings.sender,
            sent=cap_time(sent),
            status=content.status,
            msg_type=msg_type,
            infos=content.infos,
            note=content.note,
            references=tuple(Reference(h["sender"], h["identifier"], h["sent"]) for h in history),
        )
        first = content.infos[0]
        header = {
            "subject": subject.key,
            "revision": revision,
            "identifier": message.identifier,
            "sender": message.sender,
            "sent": message.sent,
            "msg_type": msg_type,
            "status": message.status,
            "fingerprint": content.fingerprint(),
            "headline": first.headline,
            "event": first.event,
            "categories": list(first.categories),
            "urgency": first.urgency,
            "severity": first.severity,
            "certainty": first.certainty,
            "effective": first.effective,
            "expires": first.expires,
            "area_desc": first.area_desc,
            "geocodes": [list(pair) for pair in first.geocodes],
            "web": first.web,
            "scripts": {str(script_id): version for script_id, version in content.scripts},
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

    def _world(self, now: datetime) -> _World:
        scripts = [s for s in Scripts(self.store).list() if s.event_id is not None and s.is_current(now)]
        versions = self.store.scripts.many_versions([(s.id, s.live_version) for s in scripts])  # type: ignore[misc]
        by_event: dict[int, list[_Text]] = {}
        for script, version in zip(scripts, versions, strict=True):
            if version:
                # Only the public fields are read: agent notes never reach a CAP document.
                by_event.setdefault(script.event_id, []).append(  # type: ignore[arg-type]
                    _Text(
                        language=script.language,
                        title=str(version.get("title") or "").strip(),
                        summary=str(version.get("summary") or "").strip(),
                        body=plain_text(version.get("body") or ""),
                        script_id=script.id,
                        version=int(version["version"]),
                        expires_at=script.expires_at,
                    )
                )
        for texts in by_event.values():
            texts.sort(key=lambda t: (t.language, t.title, t.script_id))
        return _World(
            now=now,
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
        if announcement is None or not announcement.activated_at:
            return None
        if not _over(announcement, world.now) and not announcement.playing(world.now):
            return None  # activated ahead of its start: nothing to tell until callers hear it
        return self._announcement_content(announcement, world)

    def _event_content(self, event: Event, world: _World) -> Content:
        """Compose an event's message: one info per language its scripts and messages speak."""
        closing = event.status == "closed"
        texts = [] if closing else world.scripts.get(event.id, [])
        heard = [] if closing else _heard(event, world)
        languages = _languages(
            ["en", *(t.language for t in texts), *(lang for a, _ in heard for lang in a.messages)]
        )
        # The information lapses with the first script or phone message it carries.
        ends = [t.expires_at for t in texts] + [a.ends_at for a, _ in heard]
        expires = min((clock.parse_iso(e) for e in ends if e), default=None)
        infos = []
        for language in languages:
            description = [
                f"{hazards.EVENT_TEXT.get(event.kind, 'Emergency')} declared: {event.name}.",
                *_detail_lines(event.details),
            ]
            if closing:
                description.append(
                    f"This event was stood down at {cap_time(clock.parse_iso(event.closed_at))}."
                )
            for announcement, line in heard:
                text = announcement.messages.get(language) or next(iter(announcement.messages.values()), "")
                description.append(f"Callers to {line.name} ({line.number}) hear: {text}")
            instruction = "\n\n".join(t.instruction() for t in texts if t.language == language)
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
                    effective=_time(event.declared_at),
                    expires=cap_time(expires) if expires else "",
                    sender_name=self.settings.sender_name,
                    headline=_headline(event.name, exercise=event.exercise, closing=closing),
                    description="\n".join(description),
                    instruction=instruction,
                    web=self._web(event),
                    contact=event.details.get("hotline", ""),
                    area_desc="; ".join(event.areas) or self.settings.area_desc,
                    geocodes=_geocodes(event.areas),
                )
            )
        return Content(
            open=not closing,
            status="Exercise" if event.exercise else "Actual",
            infos=tuple(infos),
            note=EXERCISE_NOTE if event.exercise else "",
            scripts=tuple((t.script_id, t.version) for t in texts),
        )

    def _announcement_content(self, announcement: Announcement, world: _World) -> Content:
        """Compose an announcement's message: what callers hear, one info per language.

        Its hazard is that of the newest active event of the same kind of line (drills run
        on test lines); a test line's message outside any drill is a CAP ``Test``.
        """
        line = world.lines.get(announcement.line_id)
        test_line = bool(line and _is_test(line))
        context = next((e for e in world.events if e.status == "active" and e.exercise == test_line), None)
        closing = _over(announcement, world.now)
        status = "Actual" if not test_line else "Exercise" if context else "Test"
        line_name = f"{line.name} ({line.number})" if line else f"line {announcement.line_id}"
        infos = []
        for language, text in announcement.messages.items():
            infos.append(
                Info(
                    language=language,
                    categories=hazards.CATEGORIES.get(context.kind, ("Other",)) if context else ("Other",),
                    event=f"{hazards.EVENT_TEXT.get(context.kind, 'Emergency') if context else 'Public Information'} (311 phone message)",
                    urgency="Past" if closing else _urgency(context.severity) if context else "Unknown",
                    severity=hazards.SEVERITY_TO_CAP.get(context.severity, "Unknown")
                    if context
                    else "Unknown",
                    certainty="Observed" if context else "Unknown",
                    effective=_time(announcement.starts_at or announcement.activated_at),
                    expires=_time(announcement.ends_at),
                    sender_name=self.settings.sender_name,
                    headline=_headline(
                        f"311 phone message on {line_name}", exercise=status == "Exercise", closing=closing
                    ),
                    description=f"Callers to {line_name} hear: {text}",
                    web=self._web(context) if context else "",
                    contact=line.number if line else "",
                    area_desc=("; ".join(context.areas) if context else "") or self.settings.area_desc,
                    geocodes=_geocodes(context.areas) if context else (),
                )
            )
        return Content(
            open=not closing,
            status=status,
            infos=tuple(infos),
            note=EXERCISE_NOTE if status == "Exercise" else "",
        )

    def _web(self, event: Event) -> str:
        """Return the public page about an event: ours when the base URL is known and the page
        shows the event (a drill only when it says so), else the event's website."""
        on_page = not event.exercise or event.publish_drill
        return (self.settings.public_page(event.id) if on_page else "") or _web(
            event.details.get("website", "")
        )


def publisher(config: Mapping[str, Any]) -> Callable[[Store], list[dict[str, Any]]]:
    """Return the CAP publisher for :class:`crisis_console.subscribers.Subscribers`: called
    with the store after each change, it publishes what changed (see :meth:`CapFeed.publish_changes`).

    ``config`` is the app's config or the worker's settings (``PUBLIC_BASE_URL``,
    ``CRISIS_KEY_PREFIX``, optional ``CAP_SENDER``, ``CAP_SENDER_NAME``, ``CAP_AREA_DESC``):
    the web process and the worker must name messages alike. It is read at each change, so
    the feed's views and the publisher always agree.
    """

    def publish_cap(store: Store, **change: Any) -> list[dict[str, Any]]:
        return CapFeed(store, CapSettings.from_config(config)).publish_changes()

    return publish_cap


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


def _next_type(content: Content | None, last: dict[str, Any] | None) -> str | None:
    """Return the type of the message to publish after ``last`` (None: publish nothing)."""
    if content is None or (last is not None and last["msg_type"] == "Cancel"):
        return None
    if not content.open:
        return "Cancel" if last is not None else None  # ended before anyone was told: nothing to cancel
    if last is not None and last["fingerprint"] == content.fingerprint():
        return None
    return "Update" if last is not None else "Alert"


def _subjects(world: _World) -> list[Subject]:
    """Return the subjects in the feed: active, or ended within :data:`CANCEL_VISIBLE`."""
    now = world.now
    subjects = [Subject("event", e.id) for e in world.events if _in_feed(e.status, e.closed_at, now)]
    subjects += [
        Subject("announcement", a.id)
        for a in world.announcements
        if a.activated_at and _in_feed("active" if a.state == "active" else "closed", a.ended_at, now)
    ]
    return subjects


def _sent_order(pair: tuple[Subject, dict[str, Any]]) -> tuple[datetime, int]:
    """Order messages by when they were sent, then by revision (several in one second)."""
    header = pair[1]
    return clock.parse_iso(header["sent"]), header["revision"]


def _in_feed(status: str, ended_at: str, now: datetime) -> bool:
    """Return whether a subject belongs in the feed: active, or ended a short while ago."""
    if status == "active":
        return True
    if status != "closed" or not ended_at:
        return False
    return now - clock.parse_iso(ended_at) <= CANCEL_VISIBLE


def _over(announcement: Announcement, now: datetime) -> bool:
    """Return whether an announcement has finished: ended, or past its end time."""
    if announcement.state == "ended":
        return True
    return bool(announcement.ends_at) and clock.parse_iso(announcement.ends_at) <= now


def _heard(event: Event, world: _World) -> list[tuple[Announcement, Line]]:
    """Return the announcements callers hear now on lines of the event's kind (test for drills)."""
    return [
        (a, world.lines[a.line_id])
        for a in world.announcements
        if a.playing(world.now)
        and a.line_id in world.lines
        and _is_test(world.lines[a.line_id]) == event.exercise
    ]


def _geocodes(areas: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Return a ``ZIP`` geocode for each area that is a ZIP code (named places have none)."""
    return tuple((GEOCODE_ZIP, area.strip()) for area in areas if ZIP_RE.match(area.strip()))


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
