"""The audit trail: an append-only Redis stream."""

from __future__ import annotations

import json
from typing import Any

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.keys import Keys


class AuditRepo:
    """Append to and read the audit stream."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self._r = client
        self._keys = keys

    def add_to(self, pipe: redis.client.Pipeline, entry: AuditEntry) -> None:
        """Queue the entry on a pipeline, so it commits with the change it records."""
        pipe.xadd(self._keys.audit(), _encode(entry))

    def append(self, entry: AuditEntry) -> str:
        """Write one entry on its own; return its stream id."""
        return self._r.xadd(self._keys.audit(), _encode(entry))

    def read(self, after_id: str = "-", limit: int = 500) -> list[dict[str, Any]]:
        """Return up to ``limit`` entries after ``after_id`` (exclusive), oldest first.

        ``after_id`` is a stream id; ``"-"`` reads from the beginning and a bare
        millisecond time ``"1700000000000"`` reads entries from that instant on.
        """
        start = after_id if after_id in ("-",) or "-" not in after_id else f"({after_id}"
        rows = self._r.xrange(self._keys.audit(), min=start, max="+", count=limit)
        return [_decode(entry_id, fields) for entry_id, fields in rows]

    def latest(self, count: int) -> list[dict[str, Any]]:
        """Return the ``count`` newest entries, newest first."""
        rows = self._r.xrevrange(self._keys.audit(), max="+", min="-", count=count)
        return [_decode(entry_id, fields) for entry_id, fields in rows]

    def length(self) -> int:
        """Return how many entries the trail holds."""
        return self._r.xlen(self._keys.audit())


def _encode(entry: AuditEntry) -> dict[str, str]:
    """Turn an entry into stream fields (details as JSON)."""
    return {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "details": json.dumps(entry.details, sort_keys=True, default=str),
    }


def _decode(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """Turn a stream row into the public audit entry shape."""
    try:
        details = json.loads(fields.get("details") or "{}")
    except ValueError:
        details = {"raw": fields.get("details")}
    return {
        "id": entry_id,
        "at": fields.get("at"),
        "actor": fields.get("actor"),
        "action": fields.get("action"),
        "subject": fields.get("subject"),
        "details": details,
    }
