"""What each channel says now, for one active event: agents, phone line, SMS, public page, CAP.

The event's approved, current scripts are the single source (one per language of each
translation group); every channel is a view of them. For each channel the report names the
script versions it carries and whether that is the newest approved one, so the manager sees
at a glance where a channel lags and can bring it up to date in one step (a push, an
announcement draft from the script, a republish). Reading only: nothing here changes state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crisis_console.services.announcements import Announcements
from crisis_console.services.events import Events
from crisis_console.services.lines import Lines
from crisis_console.services.scripts import Scripts
from crisis_console.store import Store

#: How many recent pushes are searched for each script's latest one, and how many are read
#: at a time (each carries its script's text: reading stops once every group is found).
RECENT_PUSHES = 500
PUSH_PAGE = 25

CURRENT, BEHIND, MISSING, NONE = "current", "behind", "missing", "none"


@dataclass(frozen=True)
class Sources:
    """Where the public channels' own state is read (the web layer supplies them).

    ``public``: () -> ``{"rendered_at", "events": {event_id: {"scripts": {script_id:
    version}}}}`` of the public page; ``sms``: (language, event_id or None) -> the key
    message SMS replies carry (``script_id``, ``version``, ``text``, ``event_id``) for that
    event, or across every active event with None; ``cap``: (event_id) -> the newest CAP
    revision of the event (``revision``, ``sent``, ``msg_type``, ``scripts``) or None.
    """

    public: Callable[[], Mapping[str, Any]]
    sms: Callable[[str, int | None], Any]
    cap: Callable[[int], Mapping[str, Any] | None]


def _carried(found: Mapping[Any, Any], live: Mapping[int, int]) -> tuple[str, list[dict[str, int]]]:
    """Compare the script versions a channel carries with the live ones: (status, lagging)."""
    carried = {int(k): int(v) for k, v in found.items()}
    if not live:
        return NONE, []
    if not carried.keys() & live.keys():
        return MISSING, [{"script_id": sid, "carries": 0, "live": version} for sid, version in live.items()]
    lagging = [
        {"script_id": sid, "carries": carried.get(sid, 0), "live": version}
        for sid, version in live.items()
        if carried.get(sid, 0) < version
    ]
    return (BEHIND if lagging else CURRENT), lagging


class Channels:
    """The channel report over a store."""

    def __init__(self, store: Store, sources: Sources):
        self.store = store
        self.sources = sources

    def report(self, event_id: int | str) -> dict[str, Any]:
        """Return what each channel says now for one event (NotFound if there is no event)."""
        event = Events(self.store).require(event_id)
        scripts = [s for s in Scripts(self.store).list(event_id=event.id) if s.is_current()]
        live = {s.id: int(s.live_version) for s in scripts if s.live_version is not None}
        versions = self.store.scripts.many_versions([(s.id, s.live_version) for s in scripts])  # type: ignore[misc]
        approved = [
            {
                "script_id": s.id,
                "group_id": s.group_id,
                "language": s.language,
                "title": (v or {}).get("title", s.title),
                "version": s.live_version,
                "summary": (v or {}).get("summary", ""),
                "approved_by": (v or {}).get("approved_by"),
                "approved_at": (v or {}).get("updated_at"),
            }
            for s, v in zip(scripts, versions, strict=True)
        ]
        return {
            "event": {
                "id": event.id,
                "name": event.name,
                "status": event.status,
                "exercise": event.exercise,
                "sms_script_id": event.sms_script_id,
            },
            "approved": approved,
            "agents": self._agents(scripts, live),
            "phone": self._phone(event.id, live),
            "sms": self._sms(event.id, scripts, live),
            "public": self._public(event.id, live),
            "cap": self._cap(event.id, live),
        }

    def _agents(self, scripts: list[Any], live: Mapping[int, int]) -> dict[str, Any]:
        """Agents read a translation group as one script (each in their own language), so a
        group is up to date when its latest push is of a live version of one of its scripts."""
        groups: dict[int, list[Any]] = {}
        for script in scripts:
            groups.setdefault(script.group_id, []).append(script)
        latest: dict[int, dict[str, str]] = {}
        members = {s.id: s.group_id for s in scripts}
        for offset in range(0, RECENT_PUSHES, PUSH_PAGE):
            page = self.store.pushes.recent(PUSH_PAGE, offset)  # newest first
            for fields in page:
                group = members.get(int(fields["script_id"]))
                if group is not None and group not in latest:
                    latest[group] = fields
            if len(page) < PUSH_PAGE or len(latest) == len(groups):
                break
        pushes, lagging = [], []
        for group, in_group in groups.items():
            fields = latest.get(group)
            if fields is None:
                first = min(in_group, key=lambda s: (s.language != "en", s.id))
                lagging.append({"script_id": first.id, "carries": 0, "live": live[first.id]})
                continue
            script_id, version = int(fields["script_id"]), int(fields["version"])
            audience, _delivered, acked = self.store.pushes.receipts(fields["id"])
            pushes.append(
                {
                    "push_id": int(fields["id"]),
                    "script_id": script_id,
                    "version": version,
                    "title": json.loads(fields["payload"]).get("title", ""),
                    "pushed_at": fields.get("created_at", ""),
                    "acknowledged": len(acked),
                    "audience_size": len(audience),
                }
            )
            if version < live[script_id]:
                lagging.append({"script_id": script_id, "carries": version, "live": live[script_id]})
        if not live:
            status = NONE
        elif not pushes:
            status = MISSING
        else:
            status = BEHIND if lagging else CURRENT
        return {"status": status, "lagging": lagging, "pushes": pushes}

    def _phone(self, event_id: int, live: Mapping[int, int]) -> dict[str, Any]:
        lines = {line.id: line for line in Lines(self.store).list()}
        service = Announcements(self.store)
        on_air = []
        for line in lines.values():
            for announcement in service.activated(line.id):
                if announcement.event_id not in (None, event_id):
                    continue
                on_air.append(
                    {
                        "id": announcement.id,
                        "line": line.name or line.number,
                        "number": line.number,
                        "playing": announcement.playing(),
                        "sources": announcement.sources,
                        "written_separately": not announcement.sources,
                    }
                )
        # Replacements drawn from the live versions that still wait for review or activation.
        waiting = [
            {"id": a.id, "state": a.state, "line": lines[a.line_id].name or lines[a.line_id].number}
            for a in service.list()
            if a.state in ("draft", "in_review", "approved")
            and a.line_id in lines
            and a.sources
            and all(live.get(src["script_id"]) == src["version"] for src in a.sources.values())
        ]
        carried = {src["script_id"]: src["version"] for item in on_air for src in item["sources"].values()}
        status, lagging = _carried(carried, live)
        if on_air and not carried and live:
            status = BEHIND  # on air, but not drawn from any approved script
        if not on_air:
            status = MISSING if live else NONE
        return {"status": status, "lagging": lagging, "announcements": on_air, "waiting": waiting}

    def _sms(self, event_id: int, scripts: list[Any], live: Mapping[int, int]) -> dict[str, Any]:
        languages = sorted({s.language for s in scripts}, key=lambda lang: (lang != "en", lang)) or ["en"]
        replies = []
        for language in languages:
            key = self.sources.sms(language, event_id)
            if key is not None:
                winner = self.sources.sms(language, None)  # what a resident's text gets now
                replies.append(
                    {
                        "language": language,
                        "script_id": key.script_id,
                        "version": key.version,
                        "text": key.text,
                        "other_event": winner.event_id if winner and winner.event_id != event_id else None,
                    }
                )
        carried = {r["script_id"]: r["version"] for r in replies}
        status = NONE if not live else CURRENT if replies else MISSING
        lagging = [
            {"script_id": sid, "carries": v, "live": live[sid]}
            for sid, v in carried.items()
            if sid in live and v < live[sid]
        ]
        return {"status": BEHIND if lagging else status, "lagging": lagging, "replies": replies}

    def _public(self, event_id: int, live: Mapping[int, int]) -> dict[str, Any]:
        state = self.sources.public() or {}
        shown = (state.get("events") or {}).get(event_id) or {}
        status, lagging = _carried(shown.get("scripts", {}), live)
        return {"status": status, "lagging": lagging, "rendered_at": state.get("rendered_at", "")}

    def _cap(self, event_id: int, live: Mapping[int, int]) -> dict[str, Any]:
        latest = self.sources.cap(event_id)
        if latest is None:
            return {"status": MISSING if live else NONE, "lagging": [], "revision": None, "sent": ""}
        status, lagging = _carried(latest.get("scripts", {}), live)
        return {
            "status": status,
            "lagging": lagging,
            "revision": latest.get("revision"),
            "sent": latest.get("sent", ""),
            "msg_type": latest.get("msg_type", ""),
        }
