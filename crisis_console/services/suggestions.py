"""The closed loop: a spike on a category suggests the hazard scripts and announcement that answer it.

Each hazard template lists the complaint categories it answers, and a category may name
hazards of its own (``hazards`` in the catalogue). A spike on one of them offers, for the
current event, "draft this script" and "draft this announcement"; one click creates the
filled drafts, which still go through the two-person review before anyone hears them.
"""

from __future__ import annotations

import contextlib
from typing import Any

from crisis_console.services.announcements import Announcements
from crisis_console.services.categories import Categories
from crisis_console.services.errors import NotFound, ValidationError
from crisis_console.services.events import Event, Events
from crisis_console.services.lines import Lines
from crisis_console.services.scripts import Scripts
from crisis_console.store import Store
from scripts_library.templates import HAZARDS, Template, fill, load_templates, unfilled

KINDS = ("script", "announcement")


def hazards_for(store: Store, category: str, templates: list[Template] | None = None) -> list[str]:
    """Return the hazards whose templates (default: the library) answer ``category`` (a code)."""
    found = {t.hazard for t in templates or load_templates() if category in t.categories}
    with contextlib.suppress(NotFound):  # a category no longer known: the templates alone decide
        found.update(h for h in Categories(store).require(category).hazards if h in HAZARDS)
    return sorted(found)


def current_event(store: Store, event_id: int | None = None) -> Event | None:
    """Return the event drafts are for: the one named, else the most recently declared active one."""
    if event_id is not None:
        return Events(store).require(event_id)
    active = sorted(Events(store).active(), key=lambda e: e.declared_at, reverse=True)
    return active[0] if active else None


def for_spike(store: Store, spike: dict[str, Any]) -> list[dict[str, Any]]:
    """Return what a manager can draft in one click for a spike (nothing without an active event)."""
    event = current_event(store)
    if event is None:
        return []
    templates = load_templates()
    english_by_hazard = {t.hazard: t for t in templates if t.language == "en"}
    out = []
    hazards = hazards_for(store, spike["category"], templates)
    if spike.get("hazard") in HAZARDS:  # a hazard's categories surging together name it first
        hazards = [spike["hazard"], *(h for h in hazards if h != spike["hazard"])]
    drafted = Scripts(store)
    for hazard in hazards:
        english = english_by_hazard.get(hazard)
        drafts = [
            {"id": s.id, "language": s.language, "title": s.title, "state": s.state}
            for s in sorted(drafted.from_template(event.id, hazard), key=lambda s: s.id)
        ]
        kinds = ["announcement"] if english and english.announcement else []
        out.append(
            {
                "hazard": hazard,
                "event_id": event.id,
                "event_name": event.name,
                "title": fill(english.title, event.template_values()) if english else hazard,
                # A script already drafted from the template is linked, never offered again.
                "kinds": kinds if drafts else ["script", *kinds],
                "drafts": drafts,
            }
        )
    return out


def once_per_hazard(suggested: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Keep each hazard's suggestion on the first spike that offers it (spikes newest first),
    so two spikes of one hazard do not each invite a draft."""
    seen: set[str] = set()
    out = []
    for suggestions in suggested:
        out.append([g for g in suggestions if g["hazard"] not in seen])
        seen.update(g["hazard"] for g in suggestions)
    return out


def draft(store: Store, data: dict[str, Any], *, actor: str) -> dict[str, Any]:
    """Create the drafts a suggestion offers: ``{kind, hazard, event_id?}``."""
    kind, hazard = data.get("kind"), data.get("hazard")
    if kind not in KINDS:
        raise ValidationError(f"kind must be one of: {', '.join(KINDS)}.", field="kind")
    if hazard not in HAZARDS:
        raise ValidationError(f"hazard must be one of: {', '.join(HAZARDS)}.", field="hazard")
    raw_event = data.get("event_id")
    if raw_event is not None and (isinstance(raw_event, bool) or not str(raw_event).isdigit()):
        raise ValidationError("event_id must be an event number.", field="event_id")
    event = current_event(store, int(raw_event) if raw_event is not None else None)
    if event is None:
        raise ValidationError("Declare an event first: drafts are filled from it.", field="event_id")
    if kind == "script":
        imported = Scripts(store).import_templates(event.id, hazard=hazard, actor=actor)
        first = imported.first()
        return {
            "kind": "script",
            "id": first.id if first else None,
            "scripts": [s.public() for s in imported.created],
            "existing": [s.public() for s in imported.existing],
            "event_id": event.id,
        }
    return {"kind": "announcement", **_announcement(store, event, hazard, actor)}


def _announcement(store: Store, event: Event, hazard: str, actor: str) -> dict[str, Any]:
    """Draft the hazard's announcement on the event's phone line, in the line's languages."""
    lines = [line for line in Lines(store).list() if line.test == event.exercise]
    if not lines:
        need = "a test line (drills play only there)" if event.exercise else "a phone line"
        raise ValidationError(f"Add {need} first.", field="line_id")
    line = lines[0]
    templates: dict[str, Template] = {
        t.language: t for t in load_templates() if t.hazard == hazard and t.announcement
    }
    values = event.template_values()
    messages = {
        lang: fill(templates[lang].announcement, values) for lang in line.languages if lang in templates
    }
    if not messages:
        raise ValidationError(f"The {hazard} templates have no announcement text.", field="hazard")
    announcement = Announcements(store).create(
        {"line_id": line.id, "messages": messages, "event_id": event.id}, actor=actor
    )
    missing = sorted({name for text in messages.values() for name in unfilled(text)})
    return {
        "announcement": announcement.public(),
        "line": line.public(),
        "event_id": event.id,
        "unfilled": missing,
    }
