"""Surge announcements: what callers hear on a line before they reach an agent.

``draft → in_review → approved → active → ended``, under the same two-person rule as
scripts. A line plays at most one announcement: activating another ends it, except that
activating one scheduled to start later leaves the one on air playing until that start
(the new one ``follows`` it), so callers are never left with no message in between; at the
start the scheduler ends the old one (audited as handed over). An active announcement plays
only between its ``starts_at`` and ``ends_at``; the webhook compares times itself, so a
schedule, and a handover, holds even when no worker runs.

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
from crisis_console.services import audit, signals, validation
from crisis_console.services.errors import Conflict, Forbidden, NotFound, ValidationError
from crisis_console.services.events import Events
from crisis_console.services.lines import Lines
from crisis_console.services.milestones import Milestones
from crisis_console.services.scripts import Scripts
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
    #: The announcement that keeps playing on the line until this one starts (a handover).
    follows: int | None = None
    #: language -> ``{"script_id", "version"}``: the approved script versions whose key
    #: message each language says ({} when written separately).
    sources: dict[str, dict[str, int]] = field(default_factory=dict)

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
        follows=int(fields["follows"]) if fields.get("follows") else None,
        sources=json.loads(fields.get("sources") or "{}"),
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

    def create(
        self,
        data: Mapping[str, Any],
        *,
        actor: str,
        sources: Mapping[str, Mapping[str, int]] | None = None,
        authors: list[str] | None = None,
    ) -> Announcement:
        """Create a draft ``{line_id, messages, voice?, audio_url?, starts_at?, ends_at?, event_id?}``.

        ``sources`` (set by :meth:`from_script` only, never from a request) names the script
        version each language's message was drawn from; ``authors`` (default: the actor) are
        who may not approve it.
        """
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
            "sources": json.dumps(sources or {}),
            "state": "draft",
            "authors": json.dumps(authors or [actor]),
            "created_by": actor,
            "created_at": clock.iso(),
        }
        record_id = self.store.announcements.new_id()
        entry = audit.entry(actor, "announcement.created", f"announcement:{record_id}", line=line.number)
        self.store.announcements.create(fields, entry, record_id=record_id)
        created = self.require(record_id)
        self._announce(created, "created")
        return created

    def from_script(
        self, script_id: int | str, line_id: Any, *, actor: str, by_console: bool = False
    ) -> Announcement:
        """Draft an announcement saying an approved script's key message, in each language the
        line offers that the script (or one of its translations) has approved.

        The draft is linked to those script versions, so the console can tell when the phone
        line lags a newer approval; like any announcement it still needs a second manager. A
        draft the console makes itself (``by_console``) counts the writers of those versions as
        its authors, so none of them may approve it.
        """
        scripts = Scripts(self.store)
        script = scripts.require(script_id)
        line = Lines(self.store).get(line_id or "")
        if line is None:
            raise ValidationError("line_id must name an existing phone line.", field="line_id")
        translations = scripts.translations(script)
        messages: dict[str, str] = {}
        sources: dict[str, dict[str, int]] = {}
        writers: list[str] = []
        for language in line.languages:
            candidate = scripts.get(translations.get(language, "")) if language in translations else None
            if candidate is None or not candidate.is_current():
                continue
            version = self.store.scripts.version(candidate.id, candidate.live_version)  # type: ignore[arg-type]
            if version and version.get("summary"):
                messages[language] = version["summary"]
                sources[language] = {"script_id": candidate.id, "version": int(version["version"])}
                writers += [w for w in version.get("authors") or [] if w not in writers]
        if not messages:
            raise Conflict(
                f"No approved key message of this script is in a language {line.name or line.number} "
                f"offers ({', '.join(line.languages)}): approve one with a summary first.",
                field="script_id",
                code="no_key_message",
            )
        data = {"line_id": line.id, "messages": messages, "event_id": script.event_id}
        return self.create(
            data, actor=actor, sources=sources, authors=(writers or [actor]) if by_console else None
        )

    def redraft_lagging(self, script_id: int | str) -> list[Announcement]:
        """Draft a replacement on each line whose announcement on air says an older version of
        this script (or of a translation of it), unless one from the new version already waits.

        The drafts are the console's (``created_by`` "console"); their authors are the writers
        of the versions they say, so someone else must approve them, as for any announcement.
        An earlier console draft for the line, outdated by this approval, is withdrawn (ended).
        """
        scripts = Scripts(self.store)
        script = scripts.require(script_id)
        if not script.is_current():
            return []
        group = {int(sid) for sid in scripts.translations(script).values()}
        live = {
            sid: s.live_version for sid in group if (s := scripts.get(sid)) is not None and s.is_current()
        }
        drafted = []
        everything = self.list()
        for line in Lines(self.store).list():
            on_air = [a for a in self.activated(line.id) if a.sources]
            lagging = any(
                src["script_id"] in live and src["version"] < (live[src["script_id"]] or 0)
                for a in on_air
                for src in a.sources.values()
            )
            pending = [
                a
                for a in everything
                if a.line_id == line.id and a.state in ("draft", "in_review", "approved")
            ]
            waiting = any(
                a.sources and all(live.get(src["script_id"]) == src["version"] for src in a.sources.values())
                for a in pending
            )
            if lagging and not waiting:
                try:
                    drafted.append(self.from_script(script.id, line.id, actor="console", by_console=True))
                except Conflict:  # no key message in a language of this line
                    continue
                # The console's own earlier replacement, now outdated too, is withdrawn.
                for stale in pending:
                    if stale.created_by == "console" and stale.state == "draft":
                        self.act(stale.id, "end", actor="console")
        return drafted

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

    def current(self, line_id: int | str, now: datetime | None = None) -> Announcement | None:
        """Return the announcement of a line at ``now``: the one on air, else the one scheduled."""
        return on_air(self.activated(line_id), now)

    def activated(self, line_id: int | str) -> list[Announcement]:
        """Return the line's activated announcement and, while it waits for its start, the one
        it follows (still playing until then), newest first."""
        active_id = self.store.announcements.active_id(line_id)
        found = self.get(active_id) if active_id else None
        if found is None or found.state != "active":
            return []
        previous = self.get(found.follows) if found.follows is not None else None
        return [found, previous] if previous is not None and previous.state == "active" else [found]

    def act(
        self, announcement_id: int | str, action: str, *, actor: str
    ) -> tuple[Announcement, list[Announcement]]:
        """Apply ``action``; return the announcement and the others on the line it changed."""
        if action not in TRANSITIONS:
            raise ValidationError(f"action must be one of: {', '.join(TRANSITIONS)}.", field="action")
        allowed, target = TRANSITIONS[action]
        replaced: list[Announcement] = []
        keeps: Announcement | None = None  # stays on air until this one starts
        current = self.require(announcement_id)
        moment = clock.now()
        now = clock.iso(moment)
        others = [a for a in self.activated(current.line_id) if a.id != current.id]
        if action == "activate":
            self._check_line(current)
            if current.starts_at and clock.parse_iso(current.starts_at) > moment:
                keeps = next((a for a in others if a.playing(moment)), None)
            replaced = [a for a in others if a is not keeps]
        # Ending one that still waits for its start gives the line back to the one it follows.
        restore = next((a for a in others if a.id == current.follows), None) if action == "end" else None

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
            details: dict[str, Any] = {"line_id": fields["line_id"]}
            if action == "activate":
                updates["activated_at"] = now
                updates["follows"] = str(keeps.id) if keeps is not None else ""
                if keeps is not None:
                    details["follows"] = keeps.id
                    details["hands_over_at"] = current.starts_at
            if action == "end":
                updates["ended_at"] = now
            if replaced:
                details["replaced"] = replaced[0].id if len(replaced) == 1 else [a.id for a in replaced]
            return updates, audit.entry(
                actor, f"announcement.{_PAST[action]}", f"announcement:{announcement_id}", **details
            )

        def also(pipe: Any) -> None:
            if action == "activate":
                self.store.announcements.set_active(pipe, current.line_id, current.id)
            elif action == "end" and self.store.announcements.active_id(current.line_id) == str(current.id):
                self.store.announcements.set_active(pipe, current.line_id, restore.id if restore else None)

        self.store.announcements.change(announcement_id, decide, also)
        for other in replaced:
            # The replaced one ends as its own audited change, after the new one is live.
            self._end(other, actor, replaced_by=current.id)
        done = self.require(announcement_id)
        if action == "activate" and done.playing():
            self._live(done, clock.parse_iso(now))
        changed = [self.require(a.id) for a in replaced] + ([self.require(restore.id)] if restore else [])
        for other in changed:
            self._announce(other, "ended" if other.state == "ended" else "restored")
        self._announce(done, _PAST[action])
        return done, changed

    def _announce(self, announcement: Announcement, what: str) -> None:
        """Tell the subscribers of this store (consoles, alerts, phone-line state, CAP, public page)."""
        signals.send(signals.announcement_changed, self.store, what, announcement=announcement.public())

    def _end(self, announcement: Announcement, actor: str, **details: Any) -> None:
        """End an announcement another one takes over from, as its own audited change."""
        self.store.announcements.change(
            announcement.id,
            lambda fields: _ending(fields, actor, announcement.id, details),
            lambda pipe: pipe.incr(self.store.keys.ivr_version()),
        )

    def hand_over(self, announcement_id: int | str, *, actor: str) -> Announcement | None:
        """End the announcement a started one follows (handed over); return it, or None."""
        started = self.require(announcement_id)
        previous = self.get(started.follows) if started.follows is not None else None
        if previous is None or previous.state != "active":
            return None
        try:
            self._end(previous, actor, handed_over_to=started.id)
        except Conflict:
            return None
        ended = self.require(previous.id)
        self._announce(ended, "ended")
        return ended

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
        self._announce(started, "started")
        return True

    def stats(self, announcement_id: int | str) -> dict[str, int]:
        """Return calls, heard, deflected and routed for an announcement."""
        self.require(announcement_id)
        return self.store.announcements.stats(announcement_id)


def _ending(
    fields: dict[str, str], actor: str, announcement_id: int, details: dict[str, Any]
) -> tuple[dict[str, str], audit.AuditEntry]:
    """Decide the end of an announcement another takes over from (refused once it ended)."""
    if fields.get("state") != "active":
        raise Conflict("That announcement is no longer active.", field="state")
    return {"state": "ended", "ended_by": actor, "ended_at": clock.iso()}, audit.entry(
        actor, "announcement.ended", f"announcement:{announcement_id}", **details
    )


def on_air(activated: list[Announcement], now: datetime | None = None) -> Announcement | None:
    """Pick what a line plays at ``now`` from :meth:`Announcements.activated`: the newest one
    once it plays, the one it follows until then; the newest (scheduled) one if none plays."""
    now = now or clock.now()
    return next((a for a in activated if a.playing(now)), activated[0] if activated else None)


_PAST = {
    "submit": "submitted",
    "approve": "approved",
    "return": "returned",
    "activate": "activated",
    "end": "ended",
}
