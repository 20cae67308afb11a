"""The key message SMS replies carry: one approved script's public summary, in a language.

Which script: among the active events (the given one only, when ``event_id`` is given),
real events before drills, most recently declared first, the script an event marks as its
SMS reply (``Event.sms_script_id``) when it is current and has a summary; otherwise the
newest approved current script of those events that has a summary (newest by the time its
live version was approved). Real events are tried in full, marked then newest, before any
drill is, so a drill's message never reaches residents while a real event has one.

In which language: the translation of the chosen script in the resident's language (same
translation group) when that translation is current and has a summary; else the chosen
script itself. Only ``summary`` is ever read: ``agent_notes`` are internal and never leave
the console by SMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crisis_console.services.events import Event, Events
from crisis_console.services.scripts import Script, Scripts
from crisis_console.store import Store


@dataclass(frozen=True)
class KeyMessage:
    """The public key message one channel carries: which script version, in which language."""

    script_id: int
    version: int
    language: str
    text: str
    event_id: int | None = None
    #: The event is a drill: a reply carrying it says EXERCISE.
    exercise: bool = False
    #: The event marks this script's group as its SMS reply (else: the newest approved).
    chosen: bool = False


def key_message(store: Store, language: str, event_id: int | str | None = None) -> KeyMessage | None:
    """Return the key message SMS replies carry now in ``language``, or None when there is none."""
    events = [e for e in Events(store).active() if event_id in (None, "") or str(e.id) == str(event_id)]
    if not events:
        return None
    scripts = Scripts(store)
    current = [s for s in scripts.list() if s.is_current() and s.event_id is not None]
    versions = store.scripts.many_versions([(s.id, s.live_version) for s in current])  # type: ignore[misc]
    live = {s.id: (s, v) for s, v in zip(current, versions, strict=True) if v and _summary(v)}
    # Real events first, then drills; within each, the most recently declared first.
    ordered = sorted(events, key=lambda e: e.declared_at or e.created_at, reverse=True)
    for tier in ([e for e in ordered if not e.exercise], [e for e in ordered if e.exercise]):
        for event in tier:
            marked = live.get(event.sms_script_id) if event.sms_script_id else None
            if marked is None and event.sms_script_id:
                # The event may mark another language of a group whose original is not current.
                marked = _in_group(scripts, live, event.sms_script_id)
            if marked is not None:
                return _in_language(scripts, live, marked, language, event, chosen=True)
        ids = {e.id: e for e in tier}
        newest = sorted(
            (pair for pair in live.values() if pair[0].event_id in ids),
            key=lambda pair: (str(pair[1].get("updated_at", "")), pair[0].id),
            reverse=True,
        )
        if newest:
            event = ids[newest[0][0].event_id]  # type: ignore[index]
            return _in_language(scripts, live, newest[0], language, event, chosen=False)
    return None


def _summary(version: dict[str, Any]) -> str:
    return " ".join(str(version.get("summary") or "").split())


def _in_group(
    scripts: Scripts, live: dict[int, tuple[Script, dict[str, Any]]], script_id: int
) -> tuple[Script, dict[str, Any]] | None:
    """Return a current member (with a summary) of the translation group of ``script_id``."""
    script = scripts.get(script_id)
    if script is None:
        return None
    for member in scripts.translations(script).values():
        if member in live:
            return live[member]
    return None


def _in_language(
    scripts: Scripts,
    live: dict[int, tuple[Script, dict[str, Any]]],
    pair: tuple[Script, dict[str, Any]],
    language: str,
    event: Event,
    *,
    chosen: bool,
) -> KeyMessage:
    """Return the key message of ``pair``'s translation in ``language`` if current, else of ``pair``."""
    script, version = pair
    if script.language != language:
        translated = scripts.translations(script).get(language)
        if translated in live:
            script, version = live[translated]  # type: ignore[index]
    return KeyMessage(
        script_id=script.id,
        version=int(version["version"]),
        language=script.language,
        text=_summary(version),
        event_id=event.id,
        exercise=event.exercise,
        chosen=chosen,
    )
