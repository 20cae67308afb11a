"""API tokens, stored only as the SHA-256 of the token."""

from __future__ import annotations

import redis

from crisis_console import clock
from crisis_console.services.audit import AuditEntry
from crisis_console.store.audit import AuditRepo
from crisis_console.store.keys import Keys

#: The token's fields and its user's fields in one round trip (every API request pays it).
#: The user key is built from ``ARGV[1]`` (the user key without its id), so this assumes one
#: Redis server, as the console does everywhere.
_TOKEN_AND_USER = """
local token = redis.call('HGETALL', KEYS[1])
if #token == 0 then return {} end
for i = 1, #token, 2 do
  if token[i] == 'user_id' then
    return {token, redis.call('HGETALL', ARGV[1] .. token[i + 1])}
  end
end
return {token, {}}
"""


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class TokenRepo:
    """Create, look up, list and revoke API tokens by their hash."""

    def __init__(self, client: redis.Redis, keys: Keys, audit: AuditRepo):
        self._r = client
        self._keys = keys
        self._audit = audit
        self._token_and_user = client.register_script(_TOKEN_AND_USER)

    def add(
        self, token_hash: str, user_id: int | str, name: str, audit: AuditEntry, scope: str = "api"
    ) -> None:
        """Store a token hash for a user with its scope (``api``, ``open311``), audited at once.

        A token stored before scopes existed has no ``scope`` field: it reads as ``api``.
        """
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(
            self._keys.token(token_hash),
            mapping={"user_id": str(user_id), "name": name, "scope": scope, "created_at": clock.iso()},
        )
        pipe.sadd(self._keys.user_tokens(user_id), token_hash)
        self._audit.add_to(pipe, audit)
        pipe.execute()

    def get_with_user(self, token_hash: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """Return the token's fields and its user's fields (empty when the user is gone), or None."""
        found = self._token_and_user(keys=[self._keys.token(token_hash)], args=[self._keys.user("")])
        if not found:
            return None
        return _pairs(found[0]), _pairs(found[1])

    def touch(self, token_hash: str) -> None:
        """Record that the token was just used."""
        self._r.hset(self._keys.token(token_hash), "last_used_at", clock.iso())

    def for_user(self, user_id: int | str) -> list[dict[str, str]]:
        """Return the user's tokens (hash prefix, name, times), newest first."""
        hashes = sorted(self._r.smembers(self._keys.user_tokens(user_id)))
        pipe = self._r.pipeline(transaction=False)
        for token_hash in hashes:
            pipe.hgetall(self._keys.token(token_hash))
        rows = [
            {"scope": "api", **fields, "id": token_hash[:12]}
            for token_hash, fields in zip(hashes, pipe.execute(), strict=True)
            if fields
        ]
        return sorted(rows, key=lambda row: row.get("created_at", ""), reverse=True)

    def revoke(self, user_id: int | str, hash_prefix: str, audit: AuditEntry) -> bool:
        """Delete the user's token whose hash starts with ``hash_prefix``; False if none."""
        matches = [h for h in self._r.smembers(self._keys.user_tokens(user_id)) if h.startswith(hash_prefix)]
        if len(matches) != 1:
            return False
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._keys.token(matches[0]))
        pipe.srem(self._keys.user_tokens(user_id), matches[0])
        self._audit.add_to(pipe, audit)
        pipe.execute()
        return True
