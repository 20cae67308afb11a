"""The complaint-category catalogue: codes, names and aliases intake maps to a code.

A category is ``active`` (offered and matched), ``retired`` (kept with its history, no
longer offered or matched for new contacts, can be restored) or ``merged`` into another
(its names and its counts now belong to the kept category).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

from crisis_console import clock
from crisis_console.services import audit, validation
from crisis_console.services.errors import Conflict, NotFound, ValidationError
from crisis_console.store import Store
from crisis_console.store.complaints import CategoryTaken

CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,59}$")
ACTIVE, RETIRED, MERGED = "active", "retired", "merged"
#: Aliases a category may have (merging adds the merged-away category's names).
MAX_ALIASES = 60


def slug(name: str) -> str:
    """Return a category code for a name: ``Misc. Snow Complaint`` → ``misc_snow_complaint``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    code = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:60]
    return code if code and code[0].isalpha() else f"c_{code}"[:60]


def lookup_key(name: str) -> str:
    """Return the case- and space-insensitive key a name is found by."""
    return " ".join(str(name).split()).lower()


def normalise(text: str) -> str:
    """Return text as matching compares it: ASCII, lower case, punctuation as spaces."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_text.lower()).split())


@dataclass(frozen=True)
class Match:
    """What forgiving matching made of a typed name."""

    code: str | None
    #: When ``code`` is None: the categories it may have meant, best first (two or more
    #: close ones mean it was ambiguous).
    suggestions: list[str] = field(default_factory=list)
    ambiguous: bool = False


class Matcher:
    """Forgiving name matching over the active categories: case, punctuation, small typos.

    A typed name is matched exactly after normalising (``No-heat`` is ``no heat``), then with
    its spaces taken out (``noheat``), then by edit similarity (``stret light out``). When two
    categories are about as close, it matches neither: a wrong category is worse than asking.
    """

    #: Similarity (0–100, rapidfuzz's normalised Indel ratio) a typo must reach.
    CUTOFF = 84.0
    #: A second category this close to the best makes the match ambiguous.
    MARGIN = 6.0
    #: Similarity a category must reach to be suggested.
    SUGGEST = 60.0
    #: Typed names shorter than this are matched exactly only (too few letters to guess from).
    MIN_FUZZY = 4

    def __init__(self, categories: list[Category]):
        self.names: dict[str, str] = {c.code: c.name for c in categories}
        self._exact: dict[str, set[str]] = {}
        self._compact: dict[str, set[str]] = {}
        self._choices: list[str] = []
        self._owners: list[str] = []
        for category in categories:
            for name in {category.code, category.name, category.name_es, *category.aliases}:
                key = normalise(name)
                if not key:
                    continue
                self._exact.setdefault(key, set()).add(category.code)
                self._compact.setdefault(key.replace(" ", ""), set()).add(category.code)
                self._choices.append(key)
                self._owners.append(category.code)

    def match(self, typed: str, *, fuzzy: bool = True) -> Match:
        """Return the one category ``typed`` means, or the suggestions when it is not clear
        (``fuzzy`` False: forgive case, punctuation and spacing only, not typos)."""
        key = normalise(typed)
        for table, probe in ((self._exact, key), (self._compact, key.replace(" ", ""))):
            codes = table.get(probe, set())
            if len(codes) == 1:
                return Match(next(iter(codes)))
            if len(codes) > 1:
                return Match(None, sorted(codes, key=lambda c: self.names[c]), ambiguous=True)
        if not fuzzy or len(key.replace(" ", "")) < self.MIN_FUZZY or not self._choices:
            return Match(None)
        best: dict[str, float] = {}
        for _choice, score, index in process.extract(
            key, self._choices, scorer=fuzz.ratio, limit=None, score_cutoff=self.SUGGEST
        ):
            code = self._owners[index]
            best[code] = max(best.get(code, 0.0), score)
        ranked = sorted(best, key=lambda c: -best[c])
        if ranked and best[ranked[0]] >= self.CUTOFF:
            close = [c for c in ranked[1:] if best[c] > best[ranked[0]] - self.MARGIN]
            if not close:
                return Match(ranked[0])
            return Match(None, [ranked[0], *close][:5], ambiguous=True)
        return Match(None, self.suggest(key))

    def suggest(self, typed: str, limit: int = 3) -> list[str]:
        """Return the categories a name that matched none may have meant (words in common count)."""
        found: list[str] = []
        for _choice, _score, index in process.extract(
            normalise(typed), self._choices, scorer=fuzz.WRatio, limit=40, score_cutoff=70
        ):
            if self._owners[index] not in found:
                found.append(self._owners[index])
        return found[:limit]


@dataclass(frozen=True)
class Category:
    """A complaint category."""

    code: str
    name: str
    aliases: list[str] = field(default_factory=list)
    open311_code: str = ""
    hazards: list[str] = field(default_factory=list)
    name_es: str = ""
    status: str = ACTIVE
    merged_into: str = ""

    @property
    def active(self) -> bool:
        """Return whether the category is offered and matched for new contacts."""
        return self.status == ACTIVE

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
        name_es=fields.get("name_es", ""),
        status=fields.get("status") or ACTIVE,
        merged_into=fields.get("merged_into", ""),
    )


class Categories:
    """The catalogue rules over a store."""

    def __init__(self, store: Store):
        self.store = store

    def list(self, *, include_inactive: bool = False) -> list[Category]:
        """Return the active categories (or every one, retired and merged too), in creation order."""
        everything = [_from_fields(fields) for fields in self.store.categories.all()]
        return everything if include_inactive else [c for c in everything if c.active]

    def hazard_groups(self, *, max_age: float = 0.0) -> dict[str, list[str]]:
        """Return hazard -> the codes of the categories that answer it (two or more).

        ``max_age``: seconds a copy of the catalogue read by this process may be reused.
        """
        groups: dict[str, list[str]] = {}
        for fields in self.store.categories.all(max_age=max_age):
            if fields.get("status") == MERGED:  # its counts now belong to the kept category
                continue
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
        """Change a category's name, Spanish name, aliases, Open311 code or hazards."""
        if not isinstance(data, Mapping):
            raise ValidationError("The body must be a JSON object.", field="body")
        current = self.require(code)
        if current.status == MERGED:
            raise Conflict(
                f"{code!r} was merged into {current.merged_into!r}; change that one.", field="code"
            )
        editable = {k: v for k, v in data.items() if k not in ("code", "status", "merged_into")}
        return self._save(
            code, {**current.public(), **editable}, new=False, actor=actor, status=current.status
        )

    def retire(self, code: str, *, actor: str | None = None) -> Category:
        """Stop offering and matching a category for new contacts; its history stays."""
        current = self.require(code)
        if current.status != ACTIVE:
            raise Conflict(f"{current.name!r} is {current.status} already.", field="code")
        return self._save(code, current.public(), new=False, actor=actor, status=RETIRED, action="retired")

    def restore(self, code: str, *, actor: str | None = None) -> Category:
        """Offer and match a retired category again."""
        current = self.require(code)
        if current.status != RETIRED:
            raise Conflict(f"{current.name!r} is not retired.", field="code")
        return self._save(code, current.public(), new=False, actor=actor, status=ACTIVE, action="restored")

    def merge(self, code: str, data: Mapping[str, Any], *, actor: str | None = None) -> Category:
        """Merge ``code`` into ``data["into"]``: its names become aliases there, its counts move there."""
        if not isinstance(data, Mapping):
            raise ValidationError("The body must be a JSON object.", field="body")
        into_code = validation.text(data, "into", max_length=60)
        source = self.require(code)
        try:
            target = self.require(into_code)
        except NotFound:
            raise NotFound(f"No category {into_code!r} to merge into.", field="into") from None
        if target.code == source.code:
            raise ValidationError("A category cannot be merged into itself.", field="into")
        if source.status == MERGED:
            raise Conflict(f"{source.name!r} was merged already.", field="code")
        if target.status != ACTIVE:
            raise Conflict(
                f"{target.name!r} is {target.status}; merge into an active category.", field="into"
            )
        taken = {lookup_key(n) for n in [target.code, target.name, target.name_es, *target.aliases]}
        # The code too: it was a name people could type, and it stays claimed by the kept one.
        moved = [
            n
            for n in [source.name, source.name_es, *source.aliases, source.code]
            if n and lookup_key(n) not in taken
        ]
        aliases = list(dict.fromkeys([*target.aliases, *moved]))
        hazards = list(dict.fromkeys([*target.hazards, *source.hazards]))
        entry = audit.entry(
            actor, "category.merged", f"category:{source.code}", into=target.code, name=source.name
        )
        self.store.categories.merge(
            source.code,
            target.code,
            {"aliases": json.dumps(aliases, ensure_ascii=False), "hazards": json.dumps(hazards)},
            {"status": MERGED, "merged_into": target.code},
            entry,
        )
        self.store.categories.move_counts(source.code, target.code)
        return self.require(target.code)

    def _save(
        self,
        code: str,
        data: Mapping[str, Any],
        *,
        new: bool,
        actor: str | None,
        status: str = ACTIVE,
        action: str | None = None,
    ) -> Category:
        name = validation.text(data, "name", max_length=120)
        name_es = validation.text(data, "name_es", required=False, max_length=120)
        aliases = validation.text_list(data, "aliases", max_items=MAX_ALIASES, max_length=120)
        hazards = validation.text_list(data, "hazards", max_items=20, max_length=40)
        open311 = validation.text(data, "open311_code", required=False, max_length=60)
        names = list(
            dict.fromkeys(
                lookup_key(n)
                for n in [code, name, *([name_es] if name_es else []), *aliases]
                + ([open311] if open311 else [])
            )
        )
        current = None if new else self.store.categories.get(code)
        fields = {
            "name": name,
            "name_es": name_es,
            "aliases": json.dumps(aliases, ensure_ascii=False),
            "hazards": json.dumps(hazards),
            "open311_code": open311,
            "status": status,
            "created_at": (current or {}).get("created_at") or clock.iso(),
        }
        verb = action or ("created" if new else "updated")
        entry = audit.entry(actor, f"category.{verb}", f"category:{code}", name=name, aliases=aliases)
        try:
            self.store.categories.save(code, fields, names, entry, new=new)
        except CategoryTaken as exc:
            raise Conflict(
                f"{exc.args[0]!r} already names another category.", field="code" if new else "aliases"
            ) from None
        return self.require(code)

    def matcher(self) -> Matcher:
        """Return forgiving matching over the active categories."""
        return Matcher(self.list())

    def resolver(self, *, fresh: bool = False) -> dict[str, str]:
        """Return the lower-cased name/alias/code -> code map (``fresh``: read from Redis now)."""
        return self.store.categories.names(fresh=fresh)
