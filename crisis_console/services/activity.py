"""Recent activity on the manager console: the newest audit entries, readable and bounded.

A replay or an import writes hundreds of entries of one kind in a row; they collapse into
one row ("148 categories created") so the rest of the trail stays in view. Subjects read as
people name them ("Script “Shelter list” v2"), with the page to open where there is one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crisis_console.services.categories import Categories
from crisis_console.services.events import Events
from crisis_console.services.scripts import Scripts
from crisis_console.store import Store

#: Rows the console shows, and how many entries it reads to fill them.
ROWS = 12
SCANNED = 1000
#: Actions left out: signing in and out changes nothing (the full trail keeps them).
QUIET_PREFIXES = ("auth.",)
#: Longest alert or flag text shown in a subject cell.
ALERT_TEXT = 90

#: Plural nouns for collapsed rows, by the action's first part.
PLURALS = {
    "alert": "alerts",
    "announcement": "announcements",
    "category": "categories",
    "event": "events",
    "flag": "agents' flags",
    "line": "phone lines",
    "script": "scripts",
    "share_link": "share links",
    "token": "tokens",
    "user": "users",
}


@dataclass(frozen=True)
class Row:
    """One line of recent activity: a single entry or a run of alike entries."""

    at: str
    actor: str
    action: str
    what: str
    subject: str
    count: int = 1
    #: Endpoint and arguments of the subject's page, for ``url_for`` in the template.
    link: tuple[str, dict[str, Any]] | None = None
    #: The raw subjects of the entries this row stands for, newest first.
    subjects: list[str] = field(default_factory=list)


def shortened(text: object) -> str:
    """Return ``text`` cut to what a subject cell shows (ALERT_TEXT characters)."""
    text = str(text or "")
    return text if len(text) <= ALERT_TEXT else text[: ALERT_TEXT - 1].rstrip() + "…"


def collapse(entries: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group newest-first entries into runs of the same action by the same actor."""
    runs: list[list[dict[str, Any]]] = []
    for entry in entries:
        last = runs[-1][0] if runs else None
        if last and last["action"] == entry["action"] and last["actor"] == entry["actor"]:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


def verb(action: str) -> str:
    """Return the readable verb of an action code ("auth.signed_in" -> "signed in")."""
    return action.rpartition(".")[2].replace("_", " ")


def what(action: str, count: int) -> str:
    """Return the "What" cell: the verb, or "148 categories created" for a run."""
    if count == 1:
        return verb(action)
    noun = action.partition(".")[0]
    if noun not in PLURALS:
        return f"{verb(action)} {count} times"
    return f"{count} {PLURALS.get(noun, noun.replace('_', ' ') + 's')} {verb(action)}"


class Recent:
    """Recent activity over a store."""

    def __init__(self, store: Store):
        self.store = store
        self._categories: dict[str, str] | None = None

    def rows(self, limit: int = ROWS, scanned: int = SCANNED) -> list[Row]:
        """Return at most ``limit`` rows, newest first, from the newest ``scanned`` entries."""
        entries = (e for e in self.store.audit.latest(scanned) if not e["action"].startswith(QUIET_PREFIXES))
        runs = collapse(entries)[:limit]
        return [self._row(run) for run in runs]

    def _row(self, run: list[dict[str, Any]]) -> Row:
        newest = run[0]
        subject, link = self.describe(newest)
        distinct = list(dict.fromkeys(e["subject"] for e in run))
        if len(distinct) > 1:
            firsts = {e["subject"]: e for e in run}
            names = [self.describe(firsts[key])[0] for key in distinct[:2]]
            subject = ", ".join(names) + (f" and {len(distinct) - 2} more" if len(distinct) > 2 else "")
            link = None
        return Row(
            at=newest["at"],
            actor=newest["actor"],
            action=newest["action"],
            what=what(newest["action"], len(run)),
            subject=subject,
            count=len(run),
            link=link,
            subjects=[e["subject"] for e in run],
        )

    def describe(self, entry: dict[str, Any]) -> tuple[str, tuple[str, dict[str, Any]] | None]:
        """Return the human name of an entry's subject and the page to open, if any."""
        details = entry.get("details") or {}
        kind, _, ident = str(entry.get("subject", "")).partition(":")
        if kind == "script" and ident.isdigit():
            return self._script(int(ident), details.get("title"), details.get("version"))
        if kind == "push" and str(details.get("script_id", "")).isdigit():
            name, link = self._script(int(details["script_id"]), None, details.get("version"))
            audience = details.get("audience")
            to = "all agents" if audience == "all" else "team " + ", ".join(audience or [])
            return f"{name} to {to}", link
        if kind == "event" and ident.isdigit():
            event = Events(self.store).get(ident)
            name = details.get("name") or (event.name if event else f"#{ident}")
            return f"Event “{name}”", ("console.timing", {"event_id": int(ident)}) if event else None
        if kind == "category":
            return f"Category “{self._category_name(ident)}”", None
        if kind == "user":
            username = details.get("username") or self._username(ident)
            return f"User “{username}”", None
        if kind == "share":
            label = details.get("label")
            return (f"Share link “{label}”" if label else "Share link"), None
        if kind == "alert":
            message = shortened(details.get("message"))
            return (f"Alert: {message}" if message else "Alert"), ("console.alerts_page", {})
        if kind == "flag_group":
            text = shortened(details.get("text"))
            return (f"Agents' flag “{text}”" if text else "Agents' flag"), None
        if kind in ("announcement", "line"):
            noun = "Announcement" if kind == "announcement" else "Phone line"
            name = details.get("name") or details.get("number") or (f"#{ident}" if ident else "")
            return f"{noun} {name}".strip(), ("console.phone", {})
        return str(entry.get("subject", "")), None

    def _script(
        self, script_id: int, title: object, version: object
    ) -> tuple[str, tuple[str, dict[str, Any]] | None]:
        script = Scripts(self.store).get(script_id)
        name = title or (script.title if script else f"#{script_id}")
        shown = f"Script “{name}”" + (f" v{version}" if version else "")
        return shown, ("console.script_page", {"script_id": script_id}) if script else None

    def _category_name(self, code: str) -> str:
        if self._categories is None:
            self._categories = {c.code: c.name for c in Categories(self.store).list()}
        return self._categories.get(code, code)

    def _username(self, user_id: str) -> str:
        fields = self.store.users.get(user_id) if user_id.isdigit() else None
        return fields["username"] if fields else f"#{user_id}"
