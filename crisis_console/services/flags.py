"""Agent flags: "I keep hearing about…", grouped when their text is similar.

Frontline agents hear a trend before any category exists for it. Each flag joins the open
group whose wording is closest (rapidfuzz, after dropping case, punctuation, filler words and
spelling out street abbreviations), or starts one. A group's ``count`` is how many distinct
agents raised it in the window, so one agent repeating a flag never inflates it (and a repeat
within a minute is not even stored). A manager turns a group into a category, its flags
becoming counted complaints at their own times and ZIPs, or dismisses it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rapidfuzz import fuzz, process, utils

from crisis_console import clock
from crisis_console.roles import Role
from crisis_console.services import audit, validation
from crisis_console.services.categories import Categories, lookup_key
from crisis_console.services.errors import Conflict, NotFound, ValidationError
from crisis_console.services.intake import MAX_BATCH, ZIP_RE, Intake
from crisis_console.services.trends import duration
from crisis_console.store import Store
from crisis_console.store.flags import GroupGone

MAX_TEXT = 200
#: Who may read flags: managers and signed-in stakeholders. Not share-link viewers (people
#: without an account) nor admins: a flag is an agent's unchecked words and may carry a
#: caller's name or address.
FLAG_READERS: tuple[str, ...] = (Role.MANAGER, Role.STAKEHOLDER)
#: Two wordings at least this similar (rapidfuzz token_sort_ratio, 0–100) are one topic.
SIMILAR = 80
#: A flag joins only groups heard within this long; older topics start afresh.
MATCH_HORIZON = timedelta(hours=12)
#: The same agent raising the same topic again within this long is one flag, not two.
REPEAT_WINDOW = timedelta(minutes=1)
#: The longest window the groups can be read for.
MAX_WINDOW = timedelta(days=7)
#: Distinct wordings kept per group (for matching and for the manager to read).
MAX_TEXTS = 10
STATUSES = ("open", "promoted", "dismissed")

#: Words that carry no topic in "I keep hearing about…" sentences.
# fmt: off
FILLER = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "on", "at", "in", "of", "for",
    "to", "and", "or", "it", "its", "there", "their", "they", "people", "person", "keep", "keeps",
    "kept", "asking", "ask", "asked", "about", "calling", "call", "calls", "called", "callers",
    "caller", "lot", "lots", "many", "again", "hearing", "heard", "hear", "so", "very", "really",
    "some",
})
# fmt: on
#: Spellings that mean the same place, made one before comparing.
SAME_WORD = {
    "street": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "drive": "dr",
    "place": "pl",
    "square": "sq",
    "centre": "center",
}
NUMBER_RE = re.compile(r"\d+")


def normalise(text: str) -> str:
    """Return the wording a flag is compared by: lower case, no punctuation, no filler words."""
    words = [SAME_WORD.get(word, word) for word in utils.default_process(text).split()]
    kept = [word for word in words if word not in FILLER]
    return " ".join(kept or words)


def similarity(first: str, second: str) -> float:
    """Return how alike two flag texts are, 0–100 (different numbers in them make it 0)."""
    return _alike(normalise(first), normalise(second))


def _alike(a: str, b: str, cutoff: float = 0) -> float:
    """Return how alike two normalised texts are (0 when below ``cutoff``)."""
    score = float(fuzz.token_sort_ratio(a, b, score_cutoff=cutoff))
    if score:  # the slower check only for texts alike enough to matter
        numbers_a, numbers_b = set(NUMBER_RE.findall(a)), set(NUMBER_RE.findall(b))
        if numbers_a and numbers_b and numbers_a != numbers_b:
            return 0.0  # route 22 and route 28, 12 Elm St and 40 Elm St: different things
    return score


def best_group(text: str, groups: list[Mapping[str, str]]) -> str | None:
    """Return the id of the open group most like ``text`` (SIMILAR or more), or None.

    A group is as alike as its closest wording. Ties go to the group heard most recently (the
    first one given), so the choice never depends on chance.
    """
    keys: list[str] = []
    owners: list[int] = []
    for position, group in enumerate(groups):
        wordings = json.loads(group.get("keys") or "[]") or [
            normalise(wording)
            for wording in json.loads(group.get("texts") or "[]") or [group.get("text", "")]
        ]
        keys.extend(wordings)
        owners.extend([position] * len(wordings))
    if not keys:
        return None
    query = normalise(text)
    # One pass in rapidfuzz's C++ over every wording, then the number check on the best few.
    found = process.extract(query, keys, scorer=fuzz.token_sort_ratio, score_cutoff=SIMILAR, limit=None)
    for _key, _score, index in sorted(found, key=lambda hit: (-hit[1], owners[hit[2]])):
        if _alike(query, keys[index], SIMILAR):
            return str(groups[owners[index]]["id"])
    return None


def _ms(moment: datetime) -> int:
    """Return a moment as epoch milliseconds (the scores of the flag indexes)."""
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class RaisedFlag:
    """A flag as the API answers it, with its group's summary for the last hour."""

    flag: dict[str, Any]
    group: dict[str, Any]
    duplicate: bool


class Flags:
    """The flag rules over a store."""

    def __init__(self, store: Store):
        """Work over ``store``."""
        self.store = store

    # --- raising ------------------------------------------------------------------------

    def clean(self, data: Mapping[str, Any]) -> dict[str, str]:
        """Validate ``{text, category?, zip?}``, or raise naming the field."""
        text = " ".join(validation.text(data, "text", max_length=MAX_TEXT).split())
        category = ""
        if data.get("category") not in (None, ""):
            category = Intake(self.store).category_for(data.get("category"))
        zip_code = data.get("zip")
        if zip_code in (None, ""):
            zip_code = ""
        elif not isinstance(zip_code, str) or not ZIP_RE.match(zip_code.strip()):
            raise ValidationError("zip must be a 5-digit ZIP code.", field="zip")
        return {"text": text, "category": category, "zip": zip_code.strip()}

    def raise_flag(self, data: Mapping[str, Any], *, user_id: int, actor: str) -> RaisedFlag:
        """Record an agent's flag in its group (a repeat within a minute is not stored again)."""
        cleaned = self.clean(data)
        now = clock.now()
        at = clock.iso(now)
        key = normalise(cleaned["text"])

        def group_fields(current: dict[str, str] | None) -> dict[str, str]:
            """Return the fields to set on the group joined (None: the new one)."""
            if current is None:
                return {
                    "text": cleaned["text"],
                    "texts": json.dumps([cleaned["text"]]),
                    "keys": json.dumps([key]),
                    "status": "open",
                    "first_at": at,
                    "last_at": at,
                }
            texts = json.loads(current.get("texts") or "[]")
            keys = json.loads(current.get("keys") or "[]")
            if cleaned["text"] not in texts and len(texts) < MAX_TEXTS:
                texts.append(cleaned["text"])
            if key not in keys and len(keys) < MAX_TEXTS:
                keys.append(key)
            return {"texts": json.dumps(texts), "keys": json.dumps(keys), "last_at": at}

        def entry(group_id: str, new: bool) -> audit.AuditEntry:
            """Build the flag's audit entry."""
            return audit.entry(
                actor,
                "flag.raised",
                f"flag_group:{group_id}",
                text=cleaned["text"],
                category=cleaned["category"],
                zip=cleaned["zip"],
                new_group=new,
            )

        recorded = self.store.flags.add(
            {**cleaned, "user_id": user_id, "at": at},
            at_ms=_ms(now),
            horizon_ms=_ms(now - MATCH_HORIZON),
            repeat_ms=_ms(now - REPEAT_WINDOW),
            choose=lambda groups: best_group(cleaned["text"], groups),
            group_fields=group_fields,
            entry=entry,
        )
        summary = self.summary(recorded.group["id"], window="60m")
        return RaisedFlag(self._public_flag(recorded.flag), summary, recorded.duplicate)

    @staticmethod
    def _public_flag(flag: Mapping[str, Any]) -> dict[str, Any]:
        """Return a flag as its agent sees it (no user id)."""
        return {
            "id": int(flag["id"]),
            "group_id": int(flag["group_id"]),
            "text": flag["text"],
            "category": flag.get("category") or None,
            "zip": flag.get("zip") or None,
            "at": flag["at"],
        }

    # --- reading ------------------------------------------------------------------------

    @staticmethod
    def _window(window: str) -> timedelta:
        """Parse the window asked for (at most MAX_WINDOW), or raise naming ``window``."""
        span = duration(window, "window")
        if span > MAX_WINDOW:
            raise ValidationError("window can be at most 7d.", field="window")
        return span

    @staticmethod
    def _describe(group: Mapping[str, str], flags: list[dict[str, Any]]) -> dict[str, Any]:
        """Return a group's public summary over the given flags."""
        agents = {str(flag["user_id"]) for flag in flags}
        times = sorted(flag["at"] for flag in flags)
        zips = Counter(flag["zip"] for flag in flags if flag.get("zip"))
        categories = Counter(flag["category"] for flag in flags if flag.get("category"))
        return {
            "id": int(group["id"]),
            "text": group.get("text", ""),
            "texts": json.loads(group.get("texts") or "[]"),
            "status": group.get("status", "open"),
            "count": len(agents),
            "agents": len(agents),
            "flags": len(flags),
            "first_at": times[0] if times else None,
            "last_at": times[-1] if times else None,
            "zips": [code for code, _n in zips.most_common(5)],
            "categories": [code for code, _n in categories.most_common(3)],
            "category": group.get("category") or None,
            "complaints": int(group["complaints"]) if group.get("complaints") else None,
            "closed_by": group.get("closed_by") or None,
            "closed_at": group.get("closed_at") or None,
        }

    def groups(self, *, window: str = "60m", status: str = "open") -> list[dict[str, Any]]:
        """Return the groups heard in the window (most agents first, then latest heard)."""
        if status not in (*STATUSES, "all"):
            raise ValidationError(f"status must be one of: {', '.join((*STATUSES, 'all'))}.", field="status")
        since = _ms(clock.now() - self._window(window))
        found = [
            self._describe(group, flags)
            for group, flags in self.store.flags.heard_since(since)
            if flags and (status == "all" or group.get("status") == status)
        ]
        found.sort(key=lambda g: g["last_at"] or "", reverse=True)
        found.sort(key=lambda g: g["count"], reverse=True)
        return found

    def require(self, group_id: int) -> dict[str, str]:
        """Return a group's stored fields or raise NotFound."""
        group = self.store.flags.get(group_id)
        if group is None:
            raise NotFound(f"No flag group {group_id}.", field="id")
        return group

    def summary(self, group_id: int | str, *, window: str = "60m") -> dict[str, Any]:
        """Return one group's summary over the window."""
        group = self.require(int(group_id))
        since = _ms(clock.now() - self._window(window))
        return self._describe(group, self.store.flags.flags(group_id, since))

    # --- promoting and dismissing -------------------------------------------------------

    def promote(self, group_id: int, data: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
        """Turn an open group into a category; each of its flags becomes a counted complaint.

        ``name`` defaults to the group's text. A ``code`` or ``name`` that already names a
        category uses that category; otherwise one is created. The complaints keep their
        flags' times and ZIPs and go through the one intake.
        """
        group = self.require(group_id)
        self._must_be_open(group)
        name = validation.text(data, "name", required=False, max_length=120)
        code = validation.text(data, "code", required=False, max_length=60)
        categories = Categories(self.store)
        existing = None
        if code and self.store.categories.get(code) is not None:
            existing = code
        elif not code:
            existing = categories.resolver(fresh=True).get(lookup_key(name or group["text"]))
        if existing is not None:
            category, created = categories.require(existing), False
        else:
            wanted = {"name": name or _category_name(group["text"])}
            if code:
                wanted["code"] = code
            category, created = categories.create(wanted, actor=actor), True
        flags = self.store.flags.flags(group_id)

        def decide(current: dict[str, str]) -> tuple[dict[str, str], audit.AuditEntry]:
            """Mark the group promoted, with its audit entry."""
            updates = {
                "status": "promoted",
                "category": category.code,
                "complaints": str(len(flags)),
                "closed_by": actor,
                "closed_at": clock.iso(),
            }
            return updates, audit.entry(
                actor,
                "flag.promoted",
                f"flag_group:{group_id}",
                text=current.get("text", ""),
                category=category.code,
                category_created=created,
                complaints=len(flags),
            )

        self._close(group_id, decide)
        records = [
            {
                "category": category.code,
                "occurred_at": flag["at"],
                "zip": flag.get("zip") or "",
                "text": flag["text"],
                "channel": "phone",
            }
            for flag in flags
        ]
        intake, accepted = Intake(self.store), 0
        for start in range(0, len(records), MAX_BATCH):
            chunk = records[start : start + MAX_BATCH]
            accepted += intake.submit(chunk, channel="phone", source=f"flag:{group_id}")["accepted"]
        return {
            "group": self.summary(group_id),
            "category": category.public(),
            "created": created,
            "complaints": accepted,
        }

    def dismiss(self, group_id: int, *, actor: str) -> dict[str, Any]:
        """Close an open group without counting it (a later flag on the topic starts afresh)."""
        self._must_be_open(self.require(group_id))

        def decide(current: dict[str, str]) -> tuple[dict[str, str], audit.AuditEntry]:
            """Mark the group dismissed, with its audit entry."""
            updates = {"status": "dismissed", "closed_by": actor, "closed_at": clock.iso()}
            return updates, audit.entry(
                actor, "flag.dismissed", f"flag_group:{group_id}", text=current.get("text", "")
            )

        self._close(group_id, decide)
        return self.summary(group_id)

    @staticmethod
    def _must_be_open(group: Mapping[str, str]) -> None:
        """Refuse (409) a group already promoted or dismissed."""
        if group.get("status") != "open":
            raise Conflict(
                f"This flag group was already {group.get('status')}.", field="id", code="flag_closed"
            )

    def _close(
        self, group_id: int, decide: Callable[[dict[str, str]], tuple[dict[str, str], audit.AuditEntry]]
    ) -> None:
        """Close an open group as ``decide`` says, or raise 409 if someone closed it first."""
        try:
            self.store.flags.close(group_id, decide)
        except GroupGone as exc:
            raise Conflict(
                f"This flag group was already {exc.args[0]}.", field="id", code="flag_closed"
            ) from None


def _category_name(text: str) -> str:
    """Return a category name made from a flag's text: trimmed, first letter capital."""
    name = text.strip().rstrip(".!?")[:120]
    return name[:1].upper() + name[1:]
