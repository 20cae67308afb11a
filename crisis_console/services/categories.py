"""The complaint-category catalogue: codes, names and aliases intake maps to a code."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from crisis_console import clock
from crisis_console.services import audit, validation
from crisis_console.services.errors import Conflict, NotFound, ValidationError
from crisis_console.store import Store
from crisis_console.store.complaints import CategoryTaken

CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,59}$")


def slug(name: str) -> str:
    """Return a category code for a name: ``Misc. Snow Complaint`` → ``misc_snow_complaint``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    code = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:60]
    return code if code and code[0].isalpha() else f"c_{code}"[:60]


def lookup_key(name: str) -> str:
    """Return the case- and space-insensitive key a name is found by."""
    return " ".join(str(name).split()).lower()


@dataclass(frozen=True)
class Category:
    """A complaint category."""

    code: str
    name: str
    aliases: list[str] = field(default_factory=list)
    open311_code: str = ""
    hazards: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """Return the category as the API shows it."""
        return asdict(self)


def _from_fields(fields: dict[str, str]) -> Category:
    return Category(
        code=fields["code"],
        name=fields.get("name", fields["code"]),
        aliases=json.loads(fields.get("aliases") or "[]"),
        open311_code=fields.get("open311_code", ""),
        hazards=json.loads(fields.get("hazards") or "[]"),
    )


class Categories:
    """The catalogue rules over a store."""

    def __init__(self, store: Store):
        self.store = store

    def list(self) -> list[Category]:
        """Return every category, in creation order."""
        return [_from_fields(fields) for fields in self.store.categories.all()]

    def hazard_groups(self, *, max_age: float = 0.0) -> dict[str, list[str]]:
        """Return hazard -> the codes of the categories that answer it (two or more).

        ``max_age``: seconds a copy of the catalogue read by this process may be reused.
        """
        groups: dict[str, list[str]] = {}
        for fields in self.store.categories.all(max_age=max_age):
            for hazard in json.loads(fields.get("hazards") or "[]"):
                groups.setdefault(hazard, []).append(fields["code"])
        return {hazard: codes for hazard, codes in groups.items() if len(codes) >= 2}

    def require(self, code: str) -> Category:
        """Return a category or raise NotFound."""
        fields = self.store.categories.get(code)
        if fields is None:
            raise NotFound(f"No category {code!r}.", field="code")
        return _from_fields(fields)

    def create(self, data: Mapping[str, Any], *, actor: str | None = None) -> Category:
        """Add ``{code, name, aliases?, open311_code?, hazards?}``."""
        name = validation.text(data, "name", max_length=120)
        code = str(data.get("code") or slug(name))
        if not CODE_RE.match(code):
            raise ValidationError("code must be lower_snake_case, 2–60 characters.", field="code")
        return self._save(code, {**data, "name": name}, new=True, actor=actor)

    def update(self, code: str, data: Mapping[str, Any], *, actor: str | None = None) -> Category:
        """Change a category's name, aliases, Open311 code or hazards."""
        current = self.require(code)
        merged = {**current.public(), **{k: v for k, v in data.items() if k != "code"}}
        return self._save(code, merged, new=False, actor=actor)

    def _save(self, code: str, data: Mapping[str, Any], *, new: bool, actor: str | None) -> Category:
        name = validation.text(data, "name", max_length=120)
        aliases = validation.text_list(data, "aliases", max_items=30, max_length=120)
        hazards = validation.text_list(data, "hazards", max_items=20, max_length=40)
        open311 = validation.text(data, "open311_code", required=False, max_length=60)
        names = list(
            dict.fromkeys(lookup_key(n) for n in [code, name, *aliases] + ([open311] if open311 else []))
        )
        fields = {
            "name": name,
            "aliases": json.dumps(aliases),
            "hazards": json.dumps(hazards),
            "open311_code": open311,
            "created_at": clock.iso(),
        }
        action = "category.created" if new else "category.updated"
        entry = audit.entry(actor, action, f"category:{code}", name=name, aliases=aliases)
        try:
            self.store.categories.save(code, fields, names, entry, new=new)
        except CategoryTaken as exc:
            raise Conflict(
                f"{exc.args[0]!r} already names another category.", field="code" if new else "aliases"
            ) from None
        return self.require(code)

    def resolver(self, *, fresh: bool = False) -> dict[str, str]:
        """Return the lower-cased name/alias/code -> code map (``fresh``: read from Redis now)."""
        return self.store.categories.names(fresh=fresh)
