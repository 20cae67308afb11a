"""The hazard template library: pre-planned scripts with ``{{ placeholders }}``.

One Markdown file per hazard and language (``winter_storm.es.md``) with TOML front matter
between ``+++`` lines::

    +++
    hazard = "winter_storm"
    language = "es"
    title = "{{ event_name }}: ..."
    topic = "Shelters and services"
    categories = ["snow_plowing", "no_heat"]
    [placeholders]
    event_name = "Name of the declared event"
    +++
    Markdown body using {{ event_name }} ...
    +++ agent_notes
    Markdown for agents and managers only ...

The body and the one-line ``summary`` are public (the information page, SMS replies, CAP);
what follows a ``+++ agent_notes`` line is internal guidance that never leaves the console.

Emergency managers review these in git in calm weather. Importing one for an event fills the
placeholders the event knows and leaves the rest visible as ``{{ name }}``, so that the draft
cannot be submitted until a person fills them in.

Pure Python (standard library only): no Flask, no Redis.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HAZARDS: tuple[str, ...] = (
    "boil_water",
    "extreme_heat",
    "flood",
    "hurricane",
    "power_outage",
    "winter_storm",
)
LANGUAGES: tuple[str, ...] = ("en", "es")
#: The topics a script can be filed under (always in English: it is a filter key).
TOPICS: tuple[str, ...] = (
    "General information",
    "Safety",
    "Shelters and services",
    "Utilities",
    "Transport and closures",
)
TEMPLATES_DIR: Path = Path(__file__).resolve().parent / "templates"
PLACEHOLDER_RE: re.Pattern[str] = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")

_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")
_BRACES_RE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_FENCE = "+++"
_NOTES_FENCE = "+++ agent_notes"
#: The longest public key message (two SMS segments, a CAP headline-sized text).
MAX_SUMMARY = 320
_FIELDS: dict[str, type] = {
    "hazard": str,
    "language": str,
    "title": str,
    "topic": str,
    "categories": list,
    "placeholders": dict,
}
#: Optional keys: ``announcement`` is the short text for the phone line's surge
#: announcement (read aloud, so plain sentences), offered with the script.
#: ``summary`` is the public key message (SMS replies, the information page, CAP headlines).
_OPTIONAL: dict[str, type] = {"announcement": str, "summary": str}
_TYPE_NAMES = {str: "a string", list: "a list", dict: "a table"}


class TemplateError(ValueError):
    """A template file is malformed; the message names the file and the field at fault."""


@dataclass(frozen=True)
class Template:
    """One hazard template in one language."""

    hazard: str
    language: str
    title: str
    topic: str
    body: str
    categories: tuple[str, ...]
    placeholders: dict[str, str]  # name -> description for whoever fills it in
    path: Path
    announcement: str = ""
    summary: str = ""
    agent_notes: str = ""

    @property
    def key(self) -> str:
        """Return ``hazard.language``, e.g. ``winter_storm.es``."""
        return f"{self.hazard}.{self.language}"


# --- placeholders ----------------------------------------------------------------------------


def placeholders_in(text: str) -> list[str]:
    """Return the placeholder names in ``text``, each once, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER_RE.findall(text or "")))


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace the placeholders that have a value; leave the others as ``{{ name }}``.

    A value that is missing, empty or only whitespace counts as no value. Values are
    inserted literally: a value containing ``{{ … }}`` is not expanded again.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is None or not str(value).strip():
            return "{{ " + name + " }}"
        return str(value)

    return PLACEHOLDER_RE.sub(substitute, text or "")


def unfilled(text: str) -> list[str]:
    """Return the names of the placeholders still in ``text``, in order of first appearance."""
    return placeholders_in(text)


def render_template(template: Template, values: Mapping[str, str]) -> dict[str, str]:
    """Return the template's title, summary, body and agent notes with ``values`` filled in."""
    return {
        "title": fill(template.title, values),
        "summary": fill(template.summary, values),
        "body": fill(template.body, values),
        "agent_notes": fill(template.agent_notes, values),
    }


# --- parsing -----------------------------------------------------------------------------------


def _split(text: str, name: str) -> tuple[str, str]:
    """Return (front matter, body) of a template's text."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != _FENCE:
        raise TemplateError(f"{name}: must start with TOML front matter between '{_FENCE}' lines")
    for index in range(1, len(lines)):
        if lines[index].strip() == _FENCE:
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :])
    raise TemplateError(f"{name}: front matter is not closed by a '{_FENCE}' line")


def _check_braces(text: str, name: str, field: str) -> None:
    """Refuse ``{{ … }}`` that is not a well-formed placeholder (it would never be filled)."""
    for match in _BRACES_RE.finditer(text):
        if not PLACEHOLDER_RE.fullmatch(match.group(0)):
            raise TemplateError(
                f"{name}: {field}: {match.group(0)!r} is not a placeholder; "
                "write {{ lower_snake_case_name }}"
            )
    if "{{" in _BRACES_RE.sub("", text):
        raise TemplateError(f"{name}: {field}: '{{{{' without a matching '}}}}'")


def parse_template(text: str, path: Path) -> Template:
    """Parse and check one template file's text.

    Checks that the front matter is present and valid TOML with exactly the expected keys
    and types; that hazard, language and topic are known; that a file named
    ``<hazard>.<language>.md`` says the same inside; and that the placeholders declared in
    ``[placeholders]`` are exactly those used in the title and body.

    Raises:
        TemplateError: naming the file and what is wrong with it.
    """
    path = Path(path)
    name = path.name
    front, body = _split(text, name)
    body, _, agent_notes = body.partition("\n" + _NOTES_FENCE + "\n")
    try:
        meta: dict[str, Any] = tomllib.loads(front)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{name}: front matter is not valid TOML: {exc}") from None

    unknown = sorted(set(meta) - set(_FIELDS) - set(_OPTIONAL))
    if unknown:
        raise TemplateError(
            f"{name}: {unknown[0]}: unknown key (expected: {', '.join([*_FIELDS, *_OPTIONAL])})"
        )
    for field, kind in _OPTIONAL.items():
        if field in meta and not isinstance(meta[field], kind):
            raise TemplateError(f"{name}: {field}: must be {_TYPE_NAMES[kind]}")
    announcement = " ".join(str(meta.get("announcement", "")).split())
    for field, kind in _FIELDS.items():
        if field not in meta:
            raise TemplateError(f"{name}: {field}: is required")
        if not isinstance(meta[field], kind):
            raise TemplateError(f"{name}: {field}: must be {_TYPE_NAMES[kind]}")

    hazard, language = meta["hazard"], meta["language"]
    if hazard not in HAZARDS:
        raise TemplateError(f"{name}: hazard: {hazard!r} is not one of {', '.join(HAZARDS)}")
    if language not in LANGUAGES:
        raise TemplateError(f"{name}: language: {language!r} is not one of {', '.join(LANGUAGES)}")
    parts = name.split(".")
    if len(parts) == 3 and parts[2] == "md":
        if parts[0] != hazard:
            raise TemplateError(f"{name}: hazard: {hazard!r} does not match the file name ({parts[0]!r})")
        if parts[1] != language:
            raise TemplateError(f"{name}: language: {language!r} does not match the file name ({parts[1]!r})")
    title = meta["title"].strip()
    if not title:
        raise TemplateError(f"{name}: title: must not be empty")
    if meta["topic"] not in TOPICS:
        raise TemplateError(f"{name}: topic: {meta['topic']!r} is not one of {', '.join(TOPICS)}")

    categories = meta["categories"]
    if not categories:
        raise TemplateError(f"{name}: categories: list at least one complaint category")
    for category in categories:
        if not isinstance(category, str) or not _NAME_RE.fullmatch(category):
            raise TemplateError(f"{name}: categories: {category!r} is not a lower_snake_case category code")
    if len(set(categories)) != len(categories):
        raise TemplateError(f"{name}: categories: a category is listed twice")

    declared: dict[str, Any] = meta["placeholders"]
    for key, description in declared.items():
        if not _NAME_RE.fullmatch(key):
            raise TemplateError(f"{name}: placeholders: {key!r} is not a lower_snake_case name")
        if not isinstance(description, str) or not description.strip():
            raise TemplateError(f"{name}: placeholders: {key!r} needs a description (a non-empty string)")

    body = body.strip("\n").rstrip() + "\n"
    if not body.strip():
        raise TemplateError(f"{name}: body: must not be empty")
    agent_notes = agent_notes.strip("\n").rstrip() + "\n" if agent_notes.strip() else ""
    summary = " ".join(str(meta.get("summary", "")).split())
    if len(fill(summary, {})) > MAX_SUMMARY:
        raise TemplateError(f"{name}: summary: longer than {MAX_SUMMARY} characters")
    texts = {"title": title, "summary": summary, "body": body, "agent_notes": agent_notes}
    texts["announcement"] = announcement
    for field, value in texts.items():
        _check_braces(value, name, field)
    used = placeholders_in("\n".join(texts.values()))
    for placeholder in used:
        if placeholder not in declared:
            raise TemplateError(
                f"{name}: placeholders: {{{{ {placeholder} }}}} is used but not declared in [placeholders]"
            )
    for placeholder in declared:
        if placeholder not in used:
            raise TemplateError(f"{name}: placeholders: {placeholder!r} is declared but never used")

    return Template(
        hazard=hazard,
        language=language,
        title=title,
        topic=meta["topic"],
        body=body,
        categories=tuple(categories),
        placeholders={key: description.strip() for key, description in declared.items()},
        path=path,
        announcement=announcement,
        summary=summary,
        agent_notes=agent_notes,
    )


def load_templates(folder: Path | None = None) -> list[Template]:
    """Load every ``*.md`` template in ``folder`` (default: the shipped library).

    Returns the templates sorted by (hazard, language).

    Raises:
        TemplateError: the folder is missing, a file cannot be read or is malformed, or two
            files are the same hazard and language (the message names the file).
    """
    root = TEMPLATES_DIR if folder is None else Path(folder)
    if not root.is_dir():
        raise TemplateError(f"{root}: is not a folder of templates")
    templates: dict[str, Template] = {}
    for path in sorted(root.glob("*.md")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path.name}: cannot be read as UTF-8 text: {exc}") from None
        template = parse_template(text, path)
        if template.key in templates:
            raise TemplateError(
                f"{path.name}: {template.key} is already defined by {templates[template.key].path.name}"
            )
        templates[template.key] = template
    return sorted(templates.values(), key=lambda t: (t.hazard, t.language))
