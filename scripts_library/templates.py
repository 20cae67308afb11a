"""The hazard template library: pre-planned scripts with ``{{ placeholders }}``.

One Markdown file per hazard and language (``winter_storm.es.md``) with TOML front matter
between ``+++`` lines. Emergency managers review these in git in calm weather; importing
one for an event fills the placeholders the event knows and leaves the rest visible, so
that submission is blocked until a person fills them in.
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
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
_FRONT_MATTER_RE = re.compile(r"\A\+\+\+\s*\n(.*?)\n\+\+\+\s*\n(.*)\Z", re.DOTALL)
_REQUIRED = {
    "hazard": str,
    "language": str,
    "title": str,
    "topic": str,
    "categories": list,
    "placeholders": dict,
}


class TemplateError(ValueError):
    """A template file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Template:
    """One hazard template in one language."""

    hazard: str
    language: str
    title: str
    topic: str
    body: str
    categories: tuple[str, ...]
    placeholders: dict[str, str]
    path: Path

    @property
    def key(self) -> str:
        """Return ``hazard.language``."""
        return f"{self.hazard}.{self.language}"


def placeholders_in(text: str) -> list[str]:
    """Return the placeholder names in ``text``, each once, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER_RE.findall(text or "")))


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace placeholders that have a non-empty value; leave the others as they are.

    Values are inserted literally (a value containing ``{{`` is not expanded again).
    """

    def substitute(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return str(value) if value not in (None, "") else "{{ " + match.group(1) + " }}"

    return PLACEHOLDER_RE.sub(substitute, text or "")


def unfilled(text: str) -> list[str]:
    """Return the names of placeholders still in ``text``."""
    return placeholders_in(text)


def render_template(template: Template, values: Mapping[str, str]) -> tuple[str, str]:
    """Return the template's title and body with ``values`` filled in."""
    return fill(template.title, values), fill(template.body, values)


def parse_template(text: str, path: Path) -> Template:
    """Parse and check one template file.

    Raises:
        TemplateError: naming the file and what is wrong with it.
    """
    name = path.name
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        raise TemplateError(f"{name}: must start with TOML front matter between '+++' lines")
    try:
        meta: dict[str, Any] = tomllib.loads(match.group(1))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{name}: front matter is not valid TOML: {exc}") from None
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise TemplateError(f"{name}: '{key}' is required and must be a {kind.__name__}")
    if meta["hazard"] not in HAZARDS:
        raise TemplateError(f"{name}: hazard {meta['hazard']!r} is not one of {', '.join(HAZARDS)}")
    if meta["language"] not in LANGUAGES:
        raise TemplateError(f"{name}: language {meta['language']!r} is not one of {', '.join(LANGUAGES)}")
    parts = name.split(".")
    if len(parts) == 3 and parts[2] == "md" and (parts[0], parts[1]) != (meta["hazard"], meta["language"]):
        raise TemplateError(
            f"{name}: file name does not match hazard {meta['hazard']!r} and language {meta['language']!r}"
        )
    body = match.group(2).strip() + "\n"
    declared = meta["placeholders"]
    used = placeholders_in(meta["title"] + "\n" + body)
    undeclared = [p for p in used if p not in declared]
    if undeclared:
        raise TemplateError(
            f"{name}: placeholder {{{{ {undeclared[0]} }}}} is used but not declared in [placeholders]"
        )
    unused = [p for p in declared if p not in used]
    if unused:
        raise TemplateError(f"{name}: placeholder {unused[0]!r} is declared but never used")
    if not all(isinstance(c, str) for c in meta["categories"]):
        raise TemplateError(f"{name}: 'categories' must be a list of category codes")
    return Template(
        hazard=meta["hazard"],
        language=meta["language"],
        title=meta["title"],
        topic=meta["topic"],
        body=body,
        categories=tuple(meta["categories"]),
        placeholders={str(k): str(v) for k, v in declared.items()},
        path=path,
    )


def load_templates(folder: Path | None = None) -> list[Template]:
    """Load every ``*.md`` template of a folder (default: the shipped library), sorted.

    Raises:
        TemplateError: a file is malformed (the message names it).
    """
    root = Path(folder) if folder else TEMPLATES_DIR
    templates = [parse_template(path.read_text(encoding="utf-8"), path) for path in sorted(root.glob("*.md"))]
    return sorted(templates, key=lambda t: (t.hazard, t.language))
