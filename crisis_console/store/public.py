"""The rendered public information page: every variant in one hash, replaced whole."""

from __future__ import annotations

import redis

from crisis_console.store.keys import Keys

#: Delete the lock only if this renderer still holds it (it may have expired and been retaken).
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PublicRepo:
    """Stored renders of the public page, and the lock renderers take turns with."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self._r = client
        self._keys = keys
        self._unlock = client.register_script(_UNLOCK)

    def render_id(self) -> str | None:
        """Return the id of the stored render (None: nothing rendered yet, or it was lost)."""
        return self._r.hget(self._keys.public_pages(), "_render")

    def load(self) -> dict[str, str]:
        """Return every field of the stored render ({} when there is none)."""
        return self._r.hgetall(self._keys.public_pages())

    def field(self, name: str) -> str | None:
        """Return one field of the stored render (``_status``, ``_meta``), or None."""
        return self._r.hget(self._keys.public_pages(), name)

    def save(self, fields: dict[str, str]) -> None:
        """Replace the stored render with ``fields`` in one transaction."""
        key = self._keys.public_pages()
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=fields)
        pipe.execute()

    def lock(self, token: str, seconds: int) -> bool:
        """Take the render lock for ``seconds``; False if another renderer holds it."""
        return bool(self._r.set(self._keys.public_render_lock(), token, nx=True, ex=seconds))

    def unlock(self, token: str) -> None:
        """Release the render lock if ``token`` still holds it."""
        self._unlock(keys=[self._keys.public_render_lock()], args=[token])
