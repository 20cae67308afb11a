"""CAP messages published by the feed, and CAP alerts received by the inbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys

#: What a publisher decides from the history: None (publish nothing), or the new message's
#: header, its XML document and the audit entry recording it.
Decision = tuple[dict[str, Any], bytes, AuditEntry] | None


class CapRepo:
    """Per-subject message history (headers and documents) and the inbox's received set."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit

    # --- published -------------------------------------------------------------------

    def history(self, subject: str) -> list[dict[str, Any]]:
        """Return the headers of every message published about ``subject``, oldest first."""
        return [json.loads(item) for item in self._r.lrange(self._keys.cap_messages(subject), 0, -1)]

    def last(self, subject: str) -> dict[str, Any] | None:
        """Return the header of the newest message published about ``subject``, or None."""
        item = self._r.lindex(self._keys.cap_messages(subject), -1)
        return json.loads(item) if item is not None else None

    def document(self, subject: str, revision: int) -> bytes | None:
        """Return one published document, or None."""
        text = self._r.hget(self._keys.cap_documents(subject), str(revision))
        return text.encode("utf-8") if text is not None else None

    def publish(
        self, subject: str, decide: Callable[[list[dict[str, Any]]], Decision]
    ) -> dict[str, Any] | None:
        """Let ``decide`` see the history and maybe append a message, atomically.

        ``decide`` is called again if another process publishes meanwhile, so two
        processes never both publish the same revision. Returns the newest header.
        """
        messages = self._keys.cap_messages(subject)
        documents = self._keys.cap_documents(subject)

        def attempt(pipe: redis.client.Pipeline) -> dict[str, Any] | None:
            history = [json.loads(item) for item in pipe.lrange(messages, 0, -1)]
            decision = decide(history)
            if decision is None:
                pipe.unwatch()
                return history[-1] if history else None
            header, document, entry = decision
            pipe.multi()
            pipe.rpush(messages, json.dumps(header, sort_keys=True))
            pipe.hset(documents, str(header["revision"]), document.decode("utf-8"))
            self._audit.add_to(pipe, entry)
            return header

        return self._r.transaction(attempt, messages, value_from_callable=True)

    # --- received ----------------------------------------------------------------------

    @staticmethod
    def _field(sender: str, identifier: str) -> str:
        return json.dumps([sender, identifier])

    def received(self, sender: str, identifier: str) -> dict[str, Any] | None:
        """Return what the inbox recorded for an alert, or None if it never came."""
        value = self._r.hget(self._keys.cap_received(), self._field(sender, identifier))
        return json.loads(value) if value else None

    def claim(self, sender: str, identifier: str, record: dict[str, Any], entry: AuditEntry) -> bool:
        """Record an alert as received unless it already was (then False); audited."""
        key = self._keys.cap_received()
        field = self._field(sender, identifier)

        def attempt(pipe: redis.client.Pipeline) -> bool:
            if pipe.hexists(key, field):
                pipe.unwatch()
                return False
            pipe.multi()
            pipe.hset(key, field, json.dumps(record))
            self._audit.add_to(pipe, entry)
            return True

        return self._r.transaction(attempt, key, value_from_callable=True)

    def settle(self, sender: str, identifier: str, record: dict[str, Any]) -> None:
        """Replace the record of a claimed alert (once its event is open)."""
        self._r.hset(self._keys.cap_received(), self._field(sender, identifier), json.dumps(record))

    def release(self, sender: str, identifier: str) -> None:
        """Forget a claim whose event could not be opened, so the alert can be sent again."""
        self._r.hdel(self._keys.cap_received(), self._field(sender, identifier))
