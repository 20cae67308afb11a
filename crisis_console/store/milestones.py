"""Event milestones: when each step of an emergency (or a drill) first happened."""

from __future__ import annotations

import redis

from crisis_console.store.keys import Keys


class MilestoneRepo:
    """One hash per event, each milestone written once."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self._r = client
        self._keys = keys

    def record(self, event_id: int | str, name: str, at: str) -> bool:
        """Record ``name`` at ``at`` unless already recorded; True if this call recorded it."""
        return bool(self._r.hsetnx(self._keys.event_milestones(event_id), name, at))

    def record_in(self, pipe: redis.client.Pipeline, event_id: int | str, name: str, at: str) -> None:
        """Queue recording ``name`` (unless already recorded) in another change's transaction."""
        pipe.hsetnx(self._keys.event_milestones(event_id), name, at)

    def all(self, event_id: int | str) -> dict[str, str]:
        """Return milestone name -> ISO time of one event ({} when none)."""
        return self._r.hgetall(self._keys.event_milestones(event_id))
