"""The phone line's memory for when Redis is unreachable: the last known lines and announcements.

Kept in the process and written to ``instance/ivr-state.json`` on every change, so a web
process that restarts while Redis is down still plays the announcement. The phone line
must never answer with an error.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from crisis_console.services.announcements import Announcement, Announcements, announcement_from_dict
from crisis_console.services.lines import Line, Lines, line_from_dict
from crisis_console.store import Store

log = logging.getLogger(__name__)


class LastKnownState:
    """Number -> (line, current announcement), from memory or the file."""

    def __init__(self, path: Path):
        self.path = path
        self._lines: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._loaded = False

    def remember(self, line: Line, announcement: Announcement | None) -> None:
        """Keep what a successful lookup found."""
        with self._lock:
            self._lines[line.number] = {
                "line": line.public(),
                "announcement": announcement.public() if announcement else None,
            }

    def save(self, store: Store) -> None:
        """Snapshot every line and its current announcement to memory and the file (atomically)."""
        announcements = Announcements(store)
        snapshot = {}
        for line in Lines(store).list():
            current = announcements.current(line.id)
            snapshot[line.number] = {
                "line": line.public(),
                "announcement": current.public() if current else None,
            }
        with self._lock:
            self._lines = snapshot
            self._loaded = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".ivr-state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(snapshot, handle, ensure_ascii=False)
        os.replace(temporary, self.path)

    def lookup(self, number: str) -> tuple[Line, Announcement | None] | None:
        """Return the last known line and announcement for a number, or None."""
        with self._lock:
            if not self._loaded:
                self._load()
            entry = self._lines.get(number)
        if entry is None:
            return None
        line = line_from_dict(entry["line"])
        announcement = announcement_from_dict(entry["announcement"]) if entry["announcement"] else None
        return line, announcement

    def _load(self) -> None:
        self._loaded = True
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("cannot read the last known phone-line state %s: %s", self.path, exc)
            return
        for number, entry in saved.items():
            self._lines.setdefault(number, entry)
