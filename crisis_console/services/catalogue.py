"""The starter catalogue seeded on first run, and categories imported from a city's Open311 list.

The starter categories live in ``crisis_console/data/starter_categories.toml`` (reviewed in
git). A deployment is seeded once, with one audit entry; what admins retire or merge later
stays that way. ``import_services`` reads a GeoReport v2 ``services.json`` (or
``services.xml``) and creates or updates one category per service.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from crisis_console.services import audit
from crisis_console.services.categories import ACTIVE, MAX_ALIASES, Categories, lookup_key, slug
from crisis_console.services.errors import NotFound, ServiceError
from crisis_console.store import Store

STARTER = Path(__file__).resolve().parent.parent / "data" / "starter_categories.toml"
STARTER_FIELDS = {"code", "name", "name_es", "aliases", "hazards", "open311_code"}


class CatalogueFileError(ValueError):
    """A catalogue or services file that cannot be read; the message names the file and entry."""


def load_starter(path: Path = STARTER) -> list[dict[str, Any]]:
    """Return the starter categories of the data file, checked (the message names the entry)."""
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("category", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueFileError(f"{path}: {exc}") from None
    for number, entry in enumerate(entries, start=1):
        missing = {"code", "name"} - entry.keys()
        unknown = entry.keys() - STARTER_FIELDS
        if missing or unknown:
            raise CatalogueFileError(
                f"{path.name}: category {number} ({entry.get('code', '?')}): "
                + (
                    f"missing {', '.join(sorted(missing))}"
                    if missing
                    else f"unknown {', '.join(sorted(unknown))}"
                )
            )
    return entries


def seed(store: Store, path: Path = STARTER) -> list[str]:
    """Add the starter categories if this deployment was never seeded; return the codes added."""
    rows = []
    for entry in load_starter(path):
        aliases = list(entry.get("aliases", []))
        names = [
            entry["code"],
            entry["name"],
            entry.get("name_es", ""),
            *aliases,
            entry.get("open311_code", ""),
        ]
        fields = {
            "name": entry["name"],
            "name_es": entry.get("name_es", ""),
            "aliases": json.dumps(aliases, ensure_ascii=False),
            "hazards": json.dumps(list(entry.get("hazards", []))),
            "open311_code": entry.get("open311_code", ""),
            "status": ACTIVE,
            "created_at": audit.entry(None, "", "").at,
        }
        rows.append((entry["code"], fields, list(dict.fromkeys(lookup_key(n) for n in names if n))))
    summary = audit.entry(
        None, "categories.seeded", "categories", count=len(rows), source=f"data/{path.name}"
    )
    return store.categories.seed(rows, summary)


@dataclass
class ImportSummary:
    """What an import did."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_services(path: Path) -> list[dict[str, str]]:
    """Return the services of a GeoReport v2 ``services.json`` or ``services.xml`` file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogueFileError(f"{path}: {exc.strerror or exc}") from None
    if raw.lstrip()[:1] == b"<":
        try:
            root = etree.fromstring(raw, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as exc:
            raise CatalogueFileError(f"{path.name}: not valid XML: {exc}") from None
        return [
            {child.tag: (child.text or "").strip() for child in service if isinstance(child.tag, str)}
            for service in root.iter("service")
        ]
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogueFileError(f"{path.name}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise CatalogueFileError(
            f"{path.name}: expected a JSON list of services (GeoReport v2 services.json)"
        )
    return data


def import_services(
    store: Store,
    path: Path,
    *,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Create or update one category per service of ``path``: service_code → open311_code.

    A service whose code a category already carries updates that category's name (the old
    name stays an alias); one whose name an active category already has gets the code; any
    other becomes a new category. A bad entry is reported by file and number, the rest go on.
    """
    services = read_services(path)
    catalogue = Categories(store)
    summary = ImportSummary()
    for number, service in enumerate(services, start=1):
        where = f"{path.name}: entry {number}"
        try:
            if not isinstance(service, Mapping):
                raise CatalogueFileError("expected an object with service_code and service_name")
            code_value = str(service.get("service_code") or "").strip()
            where += f" (service_code {code_value!r})" if code_value else ""
            raw_name = str(service.get("service_name") or "").strip()
            if not code_value:
                raise CatalogueFileError("service_code is missing")
            if not raw_name:
                raise CatalogueFileError("service_name is missing")
            outcome, code = _apply(catalogue, code_value, raw_name, service, actor)
            getattr(summary, outcome).append(code)
        except (CatalogueFileError, ServiceError) as exc:
            summary.errors.append(f"{where}: {exc.message if isinstance(exc, ServiceError) else exc}")
        if progress:
            progress(1)
    return summary


def _apply(
    catalogue: Categories, service_code: str, raw_name: str, service: Mapping[str, Any], actor: str | None
) -> tuple[str, str]:
    """Create or update the category for one service; return (outcome, category code)."""
    name = " ".join(raw_name.replace("_", " ").split())[:120]
    keywords = [k.strip() for k in str(service.get("keywords") or "").split(",") if k.strip()]
    extra = [n for n in [raw_name, *keywords] if lookup_key(n) != lookup_key(name)]
    everything = catalogue.list(include_inactive=True)
    by_open311 = next((c for c in everything if c.open311_code == service_code), None)
    if by_open311 is None:
        owner = catalogue.resolver(fresh=True).get(lookup_key(name))
        by_open311 = next((c for c in everything if c.code == owner and c.active), None)
    if by_open311 is not None:
        current = by_open311
        aliases = list(current.aliases)
        if current.name != name:
            aliases.append(current.name)
        aliases = list(dict.fromkeys(a for a in [*aliases, *extra] if lookup_key(a) != lookup_key(name)))
        if current.name == name and current.open311_code == service_code and aliases == current.aliases:
            return "unchanged", current.code
        catalogue.update(
            current.code,
            {"name": name, "open311_code": service_code, "aliases": aliases[:MAX_ALIASES]},
            actor=actor,
        )
        return "updated", current.code
    code = slug(name)
    try:
        catalogue.require(code)
        code = slug(f"{name} {service_code}")
    except NotFound:
        pass
    created = catalogue.create(
        {
            "code": code,
            "name": name,
            "aliases": list(dict.fromkeys(extra))[:MAX_ALIASES],
            "open311_code": service_code,
        },
        actor=actor,
    )
    return "created", created.code
