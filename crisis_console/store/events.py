"""Emergency events."""

from __future__ import annotations

import redis

from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys
from crisis_console.store.records import Records


class EventRepo(Records):
    """Events as hashes, listed newest first."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        super().__init__(
            client, audit, seq_key=keys.event_seq(), record_key=keys.event, index_key=keys.events_index()
        )
