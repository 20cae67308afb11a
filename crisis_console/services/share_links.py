"""Signed, expiring, revocable links to the read-only dashboard, for people without accounts.

The URL carries a signed link id (itsdangerous, with the console's secret key); the link
itself lives in Redis until it expires or a manager revokes it, so a copied URL stops
working at once. Whoever opens it is a *viewer*: the dashboard and what it reads, nothing else.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from crisis_console import clock
from crisis_console.roles import VIEWER
from crisis_console.services import audit, validation
from crisis_console.services.errors import NotFound, ValidationError
from crisis_console.store import Store

MIN_SECONDS, MAX_SECONDS = 300, 7 * 24 * 3600
SALT = "crisis-console-share-link"


@dataclass(frozen=True)
class ShareViewer:
    """The pseudo-user of a share link (Flask-Login reads the properties)."""

    link_id: str
    session_key: str = ""
    team: str = ""
    active: bool = True

    @property
    def id(self) -> str:
        """Rooms and socket records are keyed by this."""
        return f"share:{self.link_id}"

    username = property(lambda self: f"share-link-{self.link_id}")
    display_name = property(lambda self: "Shared dashboard")
    role = property(lambda self: VIEWER)
    is_authenticated = property(lambda self: True)
    is_active = property(lambda self: True)
    is_anonymous = property(lambda self: False)

    def get_id(self) -> str:
        """Return the session id (Flask-Login protocol)."""
        return self.id

    def public(self) -> dict[str, Any]:
        """Return what the pages and sockets show of the viewer."""
        return {"id": self.id, "username": self.username, "display_name": self.display_name, "role": VIEWER}


class ShareLinks:
    """Create, check, list and revoke share links."""

    def __init__(self, store: Store, secret_key: str):
        self.store = store
        self.signer = URLSafeSerializer(secret_key, salt=SALT)

    def create(self, data: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """Make a link valid for ``expires_in`` seconds (5 minutes to 7 days); return its token."""
        seconds = data.get("expires_in", 24 * 3600)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not MIN_SECONDS <= seconds <= MAX_SECONDS
        ):
            raise ValidationError(
                f"expires_in must be {MIN_SECONDS} to {MAX_SECONDS} seconds.", field="expires_in"
            )
        label = validation.text(data, "label", required=False, max_length=80)
        link_id = secrets.token_urlsafe(9)
        expires = clock.now() + timedelta(seconds=seconds)
        fields = {
            "id": link_id,
            "label": label,
            "created_by": actor,
            "created_at": clock.iso(),
            "expires_at": clock.iso(expires),
        }
        key = self.store.keys.share_link(link_id)
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, seconds)
        pipe.zadd(self.store.keys.share_links_index(), {link_id: time.time() + seconds})
        self.store.audit.add_to(
            pipe,
            audit.entry(
                actor, "share_link.created", f"share:{link_id}", expires_at=fields["expires_at"], label=label
            ),
        )
        pipe.execute()
        return {**fields, "token": self.signer.dumps(link_id)}

    def viewer(self, link_id: str) -> ShareViewer | None:
        """Return the viewer of a live link, or None once it expired or was revoked."""
        if not link_id or not self.store.redis.exists(self.store.keys.share_link(link_id)):
            return None
        return ShareViewer(link_id)

    def open(self, token: str) -> ShareViewer | None:
        """Return the viewer a link's token belongs to, or None (forged, expired or revoked)."""
        try:
            link_id = self.signer.loads(token)
        except BadSignature:
            return None
        return self.viewer(str(link_id))

    def live(self) -> list[dict[str, Any]]:
        """Return the links that have not expired or been revoked, soonest to expire first.

        Each is ``{id, label, created_by, created_at, expires_at, revoked}``; a revoked link
        is gone at once, so ``revoked`` is always false here (the audit trail keeps revocations).
        """
        index = self.store.keys.share_links_index()
        self.store.redis.zremrangebyscore(index, "-inf", time.time())
        pipe = self.store.redis.pipeline(transaction=False)
        for link_id in self.store.redis.zrange(index, 0, -1):
            pipe.hgetall(self.store.keys.share_link(link_id))
        return [public(fields) for fields in pipe.execute() if fields]

    def revoke(self, link_id: str, *, actor: str) -> None:
        """End a link now; raise NotFound if it is not live."""
        if self.viewer(link_id) is None:
            raise NotFound("No live share link with that id.", field="id")
        pipe = self.store.redis.pipeline(transaction=True)
        pipe.delete(self.store.keys.share_link(link_id))
        pipe.zrem(self.store.keys.share_links_index(), link_id)
        self.store.audit.add_to(pipe, audit.entry(actor, "share_link.revoked", f"share:{link_id}"))
        pipe.execute()


def public(fields: dict[str, str]) -> dict[str, Any]:
    """Return what the API and the console show of a link (never its token)."""
    return {
        "id": fields["id"],
        "label": fields.get("label", ""),
        "created_by": fields.get("created_by", ""),
        "created_at": fields.get("created_at", ""),
        "expires_at": fields.get("expires_at", ""),
        "revoked": False,
    }
