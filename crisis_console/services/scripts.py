"""Scripts: writing, review under the two-person rule, versions, translations, templates.

The rules themselves live in :mod:`scripts_library.model`; this module loads and saves
through the store and turns rule refusals into service errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from crisis_console import clock
from crisis_console.services import audit, signals, validation
from crisis_console.services.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError
from crisis_console.services.events import Events
from crisis_console.store import Store
from crisis_console.store.scripts import LanguageTaken
from scripts_library import model
from scripts_library.rendering import diff_lines, render_markdown
from scripts_library.templates import HAZARDS, MAX_SUMMARY, load_templates, render_template

LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
MAX_BODY = 20_000
#: The text a version holds. ``summary`` and ``body`` are public (information page, SMS,
#: CAP, phone line); ``agent_notes`` is for agents and managers only, never published.
TEXT_FIELDS = ("title", "topic", "summary", "body", "agent_notes")
PUBLIC_TEXT = ("title", "summary", "body")


def version_text(version: Mapping[str, Any]) -> str:
    """Return a version's text as a reviewer compares it: title, summary, body, agent notes."""
    text = {field: str(version.get(field) or "").strip() for field in TEXT_FIELDS}
    parts = [f"# {text['title']}"]
    if text["summary"]:
        parts.append(f"Summary: {text['summary']}")
    parts.append(text["body"])
    if text["agent_notes"]:
        parts.append(f"--- Agent notes (not public) ---\n\n{text['agent_notes']}")
    return "\n\n".join(parts)


@dataclass(frozen=True)
class Script:
    """A script as pages and the API see it (the latest version's title and topic)."""

    id: int
    group_id: int
    language: str
    title: str
    topic: str
    state: str
    version: int
    live_version: int | None
    event_id: int | None
    expires_at: str
    hazard: str
    created_by: str
    created_at: str
    updated_at: str
    #: The hazard template it was imported from (``winter_storm.es``), "" if written by hand.
    template: str = ""

    def public(self) -> dict[str, Any]:
        """Return the script as the API shows it."""
        return asdict(self)

    def expired(self, now: datetime | None = None) -> bool:
        """Return whether the expiry time has passed."""
        return bool(self.expires_at) and clock.parse_iso(self.expires_at) <= (now or clock.now())

    def is_current(self, now: datetime | None = None) -> bool:
        """Return whether agents should see it: an approved version, not retired, not expired."""
        return self.live_version is not None and self.state != model.State.RETIRED and not self.expired(now)


def _from_fields(fields: dict[str, str]) -> Script:
    return Script(
        id=int(fields["id"]),
        group_id=int(fields.get("group_id") or fields["id"]),
        language=fields.get("language", "en"),
        title=fields.get("title", ""),
        topic=fields.get("topic", ""),
        state=fields.get("state", model.State.DRAFT),
        version=int(fields.get("version", "1")),
        live_version=int(fields["live_version"]) if fields.get("live_version") else None,
        event_id=int(fields["event_id"]) if fields.get("event_id") else None,
        expires_at=fields.get("expires_at", ""),
        hazard=fields.get("hazard", ""),
        created_by=fields.get("created_by", ""),
        created_at=fields.get("created_at", ""),
        updated_at=fields.get("updated_at", ""),
        template=fields.get("template", ""),
    )


@dataclass(frozen=True)
class Imported:
    """What an import did: drafts it created, and scripts it found already there (not duplicated)."""

    created: list[Script] = field(default_factory=list)
    existing: list[Script] = field(default_factory=list)

    def first(self) -> Script | None:
        """Return the script to open after the import: the first created, else the first found."""
        return (self.created or self.existing or [None])[0]


def rule_error(exc: model.ScriptRuleError) -> ServiceError:
    """Turn a domain refusal into the service error (and so the HTTP status) it deserves."""
    if isinstance(exc, model.TwoPersonRule):
        return Forbidden(exc.message, code=exc.code)
    if isinstance(exc, model.UnfilledPlaceholders):
        return ValidationError(exc.message, field="body", code=exc.code)
    return Conflict(exc.message, field="state", code=exc.code)


class Scripts:
    """The script rules over a store."""

    def __init__(self, store: Store):
        self.store = store

    # --- reading -------------------------------------------------------------------

    def get(self, script_id: int | str) -> Script | None:
        """Return a script, or None."""
        fields = self.store.scripts.get(script_id)
        return _from_fields(fields) if fields else None

    def require(self, script_id: int | str) -> Script:
        """Return a script or raise NotFound."""
        script = self.get(script_id)
        if script is None:
            raise NotFound(f"No script with id {script_id}.", field="script_id")
        return script

    def list(
        self, *, state: str | None = None, event_id: int | str | None = None, language: str | None = None
    ) -> list[Script]:
        """Return scripts, most recently changed first, filtered as asked."""
        scripts = [_from_fields(fields) for fields in self.store.scripts.all(limit=2000)]
        if state:
            scripts = [s for s in scripts if s.state == state]
        if event_id not in (None, ""):
            scripts = [s for s in scripts if str(s.event_id) == str(event_id)]
        if language:
            scripts = [s for s in scripts if s.language == language]
        return scripts

    def versions(self, script_id: int | str) -> list[dict[str, Any]]:
        """Return every version of a script, oldest first."""
        self.require(script_id)
        return self.store.scripts.versions(script_id)

    def version(self, script_id: int | str, number: int | str) -> dict[str, Any]:
        """Return one version or raise NotFound."""
        found = self.store.scripts.version(script_id, number)
        if found is None:
            raise NotFound(f"Script {script_id} has no version {number}.", field="version")
        return found

    def diff(self, script_id: int | str, old: int | str, new: int | str) -> list[dict[str, str]]:
        """Return the line-by-line difference between two versions' title and body."""
        before, after = self.version(script_id, old), self.version(script_id, new)
        return [asdict(line) for line in diff_lines(version_text(before), version_text(after))]

    def template_diff(self, script_id: int | str, new: int | str) -> list[dict[str, str]]:
        """Return the difference between the filled template a script was imported from and a
        version ([] when it was not imported, or for scripts imported before this was kept)."""
        first = self.version(script_id, 1)
        filled = first.get("template")
        if not filled:
            return []
        after = self.version(script_id, new)
        return [asdict(line) for line in diff_lines(version_text(filled), version_text(after))]

    def from_template(self, event_id: int | str, hazard: str) -> list[Script]:
        """Return the scripts (not retired) imported from a hazard's templates for an event."""
        return [
            s for s in self.list(event_id=event_id) if s.hazard == hazard and s.state != model.State.RETIRED
        ]

    def has_key_message(self, script: Script) -> bool:
        """Return whether the script, or a translation of it, has an approved, current summary
        (what a phone announcement drawn from it would say)."""
        current = [
            s for s in (self.get(sid) for sid in self.translations(script).values()) if s and s.is_current()
        ]
        versions = self.store.scripts.many_versions([(s.id, s.live_version) for s in current])  # type: ignore[misc]
        return any(v and v.get("summary") for v in versions)

    def translations(self, script: Script) -> dict[str, int]:
        """Return language -> script id of the script's translation group."""
        return {lang: int(sid) for lang, sid in self.store.scripts.translations(script.group_id).items()}

    @staticmethod
    def agent_view(script: Script, version: dict[str, Any]) -> dict[str, Any]:
        """Return the snapshot of a version sent to agents (sanitised HTML, never raw Markdown)."""
        return {
            "id": script.id,
            "title": version["title"],
            "topic": version["topic"],
            "language": script.language,
            "version": version["version"],
            "summary": version.get("summary", ""),
            "html": render_markdown(version["body"]),
            "notes_html": render_markdown(version.get("agent_notes", "")),
            "event_id": script.event_id,
            "expires_at": script.expires_at or None,
            "group_id": script.group_id,
        }

    def current(self) -> list[dict[str, Any]]:
        """Return every script agents may see now, with content, most recently changed first."""
        scripts = [s for s in self.list() if s.is_current()]
        versions = self.store.scripts.many_versions([(s.id, s.live_version) for s in scripts])  # type: ignore[misc]
        return [self.agent_view(s, v) for s, v in zip(scripts, versions, strict=True) if v]

    def announce_expiries(self, now: datetime | None = None) -> list[Script]:
        """Announce (once, whichever process asks first) each approved script whose expiry passed."""
        now = now or clock.now()
        expired = []
        for script in self.list(state=model.State.APPROVED):
            if script.live_version is not None and script.expired(now):
                entry = audit.entry(
                    "scheduler", "script.expired", f"script:{script.id}", version=script.live_version
                )
                if self.store.scripts.claim_expiry(script.id, script.expires_at, entry):
                    expired.append(script)
                    signals.send(signals.script_changed, self.store, "expired", script=script)
        return expired

    # --- writing -----------------------------------------------------------------------

    def _clean(self, data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """Validate script fields; with ``partial`` only those present."""
        cleaned: dict[str, Any] = {}
        if not partial or "title" in data:
            cleaned["title"] = validation.text(data, "title", max_length=200)
        if not partial or "topic" in data:
            cleaned["topic"] = validation.text(data, "topic", max_length=80)
        if not partial or "body" in data:
            cleaned["body"] = validation.text(data, "body", max_length=MAX_BODY)
        if "summary" in data:
            cleaned["summary"] = " ".join(
                validation.text(data, "summary", max_length=MAX_SUMMARY, required=False).split()
            )
        if "agent_notes" in data:
            cleaned["agent_notes"] = validation.text(data, "agent_notes", max_length=MAX_BODY, required=False)
        if not partial or "language" in data:
            language = str(data.get("language") or "en").strip().lower()
            if not LANGUAGE_RE.match(language):
                raise ValidationError("language must be a language code such as en or es.", field="language")
            cleaned["language"] = language
        if "event_id" in data:
            event_id = data.get("event_id")
            if event_id in (None, ""):
                cleaned["event_id"] = ""
            else:
                if Events(self.store).get(event_id) is None:
                    raise ValidationError(f"No event with id {event_id}.", field="event_id")
                cleaned["event_id"] = str(event_id)
        if "expires_at" in data:
            expires = validation.moment(data, "expires_at")
            cleaned["expires_at"] = clock.iso(expires) if expires else ""
        return cleaned

    def create(
        self, data: Mapping[str, Any], *, actor: str, template: Mapping[str, str] | None = None
    ) -> Script:
        """Create a draft (version 1), optionally as a translation of another script.

        ``template`` (``{key, title, summary, body, agent_notes}``, the filled template) is kept with version 1 so a
        reviewer sees what was changed from it.
        """
        cleaned = self._clean(data)
        group_id = ""
        if data.get("translation_of") not in (None, ""):
            original = self.get(data["translation_of"])
            if original is None:
                raise ValidationError(f"No script with id {data['translation_of']}.", field="translation_of")
            group_id = str(original.group_id)
        hazard = str(data.get("hazard") or "")
        now = clock.iso()
        fields = {
            "language": cleaned["language"],
            "title": cleaned["title"],
            "topic": cleaned["topic"],
            "event_id": cleaned.get("event_id", ""),
            "expires_at": cleaned.get("expires_at", ""),
            "hazard": hazard if hazard in HAZARDS else "",
            "group_id": group_id,
            "state": model.State.DRAFT,
            "version": "1",
            "live_version": "",
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
            "template": template["key"] if template else "",
        }
        first = self._new_version(1, cleaned, actor)
        if template:
            first["template"] = {"key": template["key"], **{k: template.get(k, "") for k in TEXT_FIELDS}}
        entry = audit.entry(
            actor, "script.created", "script", title=cleaned["title"], language=cleaned["language"]
        )
        try:
            script_id = self.store.scripts.create_script(fields, first, entry)
        except LanguageTaken:
            raise Conflict(
                f"This script already has a {cleaned['language']} translation.",
                field="language",
                code="language_taken",
            ) from None
        return self._announce(script_id, "created")

    @staticmethod
    def _new_version(number: int, content: Mapping[str, Any], actor: str) -> dict[str, Any]:
        now = clock.iso()
        return {
            "version": number,
            "title": content["title"],
            "topic": content["topic"],
            "summary": content.get("summary", ""),
            "body": content["body"],
            "agent_notes": content.get("agent_notes", ""),
            "state": model.State.DRAFT,
            "authors": [actor],
            "submitted_by": None,
            "approved_by": None,
            "created_at": now,
            "updated_at": now,
        }

    def edit(self, script_id: int | str, data: Mapping[str, Any], *, actor: str) -> Script:
        """Change a script: text edits make the editor an author; an approved script gets a new draft."""
        cleaned = self._clean(data, partial=True)
        content = {k: cleaned[k] for k in TEXT_FIELDS if k in cleaned}
        meta = {k: cleaned[k] for k in ("event_id", "expires_at") if k in cleaned}
        if "language" in cleaned:
            raise ValidationError(
                "A script's language cannot change; create a translation instead.", field="language"
            )

        def decide(current: dict[str, str], latest: dict[str, Any] | None) -> Any:
            self._exists(current, script_id)
            state = current["state"]
            if not content:
                if state == model.State.RETIRED:
                    raise Conflict("Cannot edit a script that is retired (state: retired).", field="state")
                return (
                    meta,
                    None,
                    audit.entry(actor, "script.updated", f"script:{script_id}", fields=sorted(meta)),
                )
            try:
                outcome = model.transition(model.Action.EDIT, state, actor=actor)
            except model.ScriptRuleError as exc:
                raise rule_error(exc) from None
            assert latest is not None
            if outcome.new_version:
                version = self._new_version(latest["version"] + 1, {**latest, **content}, actor)
            else:
                authors = list(dict.fromkeys([*latest["authors"], actor]))
                version = {
                    **latest,
                    **content,
                    "state": outcome.state,
                    "authors": authors,
                    "updated_at": clock.iso(),
                }
                version["submitted_by"] = None
            updates = {
                **meta,
                "state": outcome.state,
                "version": str(version["version"]),
                "title": version["title"],
                "topic": version["topic"],
            }
            entry = audit.entry(
                actor,
                "script.edited",
                f"script:{script_id}",
                version=version["version"],
                fields=sorted(content),
            )
            return updates, version, entry

        self.store.scripts.change_script(script_id, decide)
        return self._announce(script_id, "edited")

    def _announce(self, script_id: int | str, what: str) -> Script:
        """Return the changed script, after telling this store's subscribers."""
        script = self.require(script_id)
        signals.send(signals.script_changed, self.store, what, script=script)
        return script

    def act(self, script_id: int | str, action: str, *, actor: str) -> Script:
        """Submit, approve, return or retire a script, under the rules of the domain."""
        act = model.Action(action)

        def decide(current: dict[str, str], latest: dict[str, Any] | None) -> Any:
            self._exists(current, script_id)
            assert latest is not None
            try:
                outcome = model.transition(
                    act,
                    current["state"],
                    actor=actor,
                    authors=latest.get("authors", []),
                    title=latest["title"],
                    body="\n".join(latest.get(k, "") for k in ("summary", "body", "agent_notes")),
                )
            except model.ScriptRuleError as exc:
                raise rule_error(exc) from None
            version = {**latest, "state": outcome.state, "updated_at": clock.iso()}
            updates = {"state": outcome.state}
            if act is model.Action.SUBMIT:
                version["submitted_by"] = actor
            if act is model.Action.APPROVE:
                version["approved_by"] = actor
                updates["live_version"] = str(latest["version"])
            entry = audit.entry(
                actor,
                f"script.{_PAST[act]}",
                f"script:{script_id}",
                version=latest["version"],
                title=latest["title"],
            )
            return updates, version, entry

        self.store.scripts.change_script(script_id, decide)
        return self._announce(script_id, _PAST[act])

    @staticmethod
    def _exists(current: dict[str, str], script_id: int | str) -> None:
        if not current:
            raise NotFound(f"No script with id {script_id}.", field="script_id")

    # --- templates -----------------------------------------------------------------------

    def import_templates(
        self, event_id: int | str, *, hazard: str | None = None, folder: Path | None = None, actor: str
    ) -> Imported:
        """Create drafts from the hazard library for an event, filled with its details.

        Each language of one template becomes a translation of the first. Placeholders the
        event cannot fill stay as ``{{ name }}`` and block submission until edited. A template
        already imported for the event (a script of that hazard and language, not retired) is
        not imported again: the script found is returned in ``existing``.
        """
        event = Events(self.store).require(event_id)
        wanted = hazard or event.kind
        if wanted not in HAZARDS:
            raise ValidationError(f"hazard must be one of: {', '.join(HAZARDS)}.", field="hazard")
        values = event.template_values()
        already = {s.language: s for s in self.from_template(event.id, wanted)}
        result = Imported()
        group: Script | None = next(iter(already.values()), None)
        for template in load_templates(folder):
            if template.hazard != wanted:
                continue
            if template.language in already:
                result.existing.append(already[template.language])
                continue
            texts = render_template(template, values)
            texts["summary"] = _clip(texts["summary"], MAX_SUMMARY)
            data = {
                **texts,
                "topic": template.topic,
                "language": template.language,
                "event_id": event.id,
                "hazard": template.hazard,
                "translation_of": group.id if group else None,
            }
            filled = {"key": template.key, "topic": template.topic, **texts}
            try:
                script = self.create(data, actor=actor, template=filled)
            except Conflict:  # the group's slot for this language is a retired script's
                script = self.create({**data, "translation_of": None}, actor=actor, template=filled)
            group = group or script
            result.created.append(script)
        return result


def _clip(text: str, limit: int) -> str:
    """Shorten a filled-in summary to ``limit`` characters at a word (a long event name can
    push it over); the reviewer sees and edits it before anyone approves it."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


_PAST = {
    model.Action.SUBMIT: "submitted",
    model.Action.APPROVE: "approved",
    model.Action.RETURN: "returned",
    model.Action.RETIRE: "retired",
}
