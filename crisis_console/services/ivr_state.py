"""What each phone line answers: kept in the process, checked against Redis, saved to a file.

A call costs one Redis read when nothing changed: the process keeps each number's line
and announcement with the phone-line version it was read at, and reads again only when
the version has moved (every line change and every activation moves it).

The same memory is the line's fallback: if Redis is unreachable, calls are answered from
what the process last knew, or from ``instance/ivr-state.json``, written on every change,
so a process that restarts during the outage still plays the announcement. The phone line
must never answer with an error.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from crisis_console.services.announcements import (
    Announcement,
    Announcements,
    announcement_from_dict,
    on_air,
)
from crisis_console.services.lines import Line, Lines, line_from_dict
from crisis_console.store import Store

log = logging.getLogger(__name__)

Answer = tuple[Line, Announcement | None]


class LastKnownState:
    """Number -> (line, activated announcements): fresh from Redis, or the last known.

    A line may hold two: one scheduled to start and the one playing until then; which one a
    caller hears is decided at the call, by the clock, so the handover needs no worker.
    """

    def __init__(self, path: Path):
        self.path = path
        self._known: dict[str, tuple[str, Line, list[Announcement]]] = {}
        self._lock = threading.Lock()
        self._file_loaded = False

    def find(self, store: Store, number: str) -> Answer | None:
        """Return the line called and its current announcement (None: no such line).

        Raises:
            redis.RedisError: Redis is unreachable (the caller then uses :meth:`lookup`).
        """
        version = store.announcements.version()
        with self._lock:
            cached = self._known.get(number)
        if cached is not None and cached[0] == version:
            return cached[1], on_air(cached[2])
        line = Lines(store).by_number(number)
        if line is None:
            return None
        activated = Announcements(store).activated(line.id)
        with self._lock:
            self._known[number] = (version, line, activated)
        return line, on_air(activated)

    def lookup(self, number: str) -> Answer | None:
        """Return what is last known about a number, from memory or the file."""
        with self._lock:
            if number not in self._known and not self._file_loaded:
                self._load_file()
            cached = self._known.get(number)
        return (cached[1], on_air(cached[2])) if cached else None

    def save(self, store: Store) -> None:
        """Write every line and its activated announcements to the file, atomically."""
        announcements = Announcements(store)
        snapshot = {}
        for line in Lines(store).list():
            activated = announcements.activated(line.id)
            current = on_air(activated)
            snapshot[line.number] = {
                "line": line.public(),
                "announcement": current.public() if current else None,
                "activated": [a.public() for a in activated],
            }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".ivr-state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(snapshot, handle, ensure_ascii=False)
        os.replace(temporary, self.path)

    def _load_file(self) -> None:
        """Fill memory from the file (entries already in memory are newer and stay)."""
        self._file_loaded = True
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("cannot read the last known phone-line state %s: %s", self.path, exc)
            return
        for number, entry in saved.items():
            if "activated" in entry:
                activated = [announcement_from_dict(a) for a in entry["activated"]]
            else:  # a file written before handovers were kept
                activated = [announcement_from_dict(entry["announcement"])] if entry["announcement"] else []
            self._known.setdefault(number, ("file", line_from_dict(entry["line"]), activated))
