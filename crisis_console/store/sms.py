"""Residents' SMS preferences by phone number: opted out of texts (STOP), reply language."""

from __future__ import annotations

import re

import redis

from crisis_console import clock
from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys


def number(phone: str) -> str:
    """Return a phone number as stored (E.164 as Twilio sends it: spaces, dots, dashes and
    brackets dropped), so ``+1 617 555 0188`` and ``+16175550188`` are one resident."""
    return re.sub(r"[\s().-]", "", str(phone or ""))


class SmsRepo:
    """Opt-outs and language choices of the numbers that text the console."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit

    def opt_out(self, phone: str, entry: AuditEntry) -> bool:
        """Record that ``phone`` asked for no more texts (audited); False when it already had."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hsetnx(self._keys.sms_opt_outs(), number(phone), clock.iso())
        pipe.delete(self._keys.sms_pending(number(phone)))
        self._audit.add_to(pipe, entry)
        return bool(pipe.execute()[0])

    def opt_in(self, phone: str, entry: AuditEntry) -> bool:
        """Forget the opt-out of ``phone`` (audited); False when it had none."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hdel(self._keys.sms_opt_outs(), number(phone))
        self._audit.add_to(pipe, entry)
        return bool(pipe.execute()[0])

    def opted_out(self, phone: str) -> bool:
        """Return whether ``phone`` has opted out of texts."""
        return bool(phone) and bool(self._r.hexists(self._keys.sms_opt_outs(), number(phone)))

    def opted_out_of(self, phones: list[str]) -> set[str]:
        """Return which of ``phones`` (as given) have opted out, in one round trip."""
        given = [p for p in phones if p]
        if not given:
            return set()
        found = self._r.hmget(self._keys.sms_opt_outs(), [number(p) for p in given])
        return {phone for phone, since in zip(given, found, strict=True) if since}

    def set_language(self, phone: str, language: str) -> None:
        """Remember the language ``phone`` asked to be answered in."""
        self._r.hset(self._keys.sms_languages(), number(phone), language)

    def language(self, phone: str) -> str | None:
        """Return the language ``phone`` asked for, or None when it never chose."""
        return self._r.hget(self._keys.sms_languages(), number(phone)) if phone else None
