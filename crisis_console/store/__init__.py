"""The Redis store: the only package that calls redis-py (key names live in ``keys``)."""

from __future__ import annotations

import os

import redis

from crisis_console.store.alerts import AlertRepo
from crisis_console.store.audit import AuditRepo
from crisis_console.store.cap import CapRepo
from crisis_console.store.complaints import CategoryRepo, ComplaintRepo
from crisis_console.store.connection import (
    BadRedisUrl,
    RedisTarget,
    StoreUnavailable,
    connect,
    connection_url,
    describe,
    message_queue_url,
    phone_client,
    redis_target,
    stop_embedded,
    target_of,
)
from crisis_console.store.events import EventRepo
from crisis_console.store.flags import FlagRepo
from crisis_console.store.ivr import AnnouncementRepo, LineRepo
from crisis_console.store.keys import Keys
from crisis_console.store.milestones import MilestoneRepo
from crisis_console.store.public import PublicRepo
from crisis_console.store.pushes import PushRepo
from crisis_console.store.scripts import ScriptRepo
from crisis_console.store.sessions import SessionRepo
from crisis_console.store.sms import SmsRepo
from crisis_console.store.sockets import SocketRepo
from crisis_console.store.tokens import TokenRepo
from crisis_console.store.users import UserRepo

__all__ = [
    "BadRedisUrl",
    "Keys",
    "RedisTarget",
    "Store",
    "StoreUnavailable",
    "connect",
    "connection_url",
    "describe",
    "message_queue_url",
    "phone_client",
    "redis_target",
    "stop_embedded",
    "target_of",
]


class Store:
    """All repositories over one Redis client and one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "cc"):
        self.redis = client
        #: The server (and how to reach it) every other client of this store is built for.
        self.target = target_of(client)
        self.keys = Keys(prefix)
        self.audit = AuditRepo(client, self.keys)
        self.users = UserRepo(client, self.keys, self.audit)
        self.tokens = TokenRepo(client, self.keys, self.audit)
        self.sockets = SocketRepo(client, self.keys)
        self.sessions = SessionRepo(client, self.keys)
        self.events = EventRepo(client, self.keys, self.audit)
        self.milestones = MilestoneRepo(client, self.keys)
        self.scripts = ScriptRepo(client, self.keys, self.audit)
        self.pushes = PushRepo(client, self.keys, self.audit)
        self.public = PublicRepo(client, self.keys)
        self.lines = LineRepo(client, self.keys, self.audit)
        self.announcements = AnnouncementRepo(client, self.keys, self.audit)
        self.categories = CategoryRepo(client, self.keys, self.audit)
        self.complaints = ComplaintRepo(client, self.keys)
        self.alerts = AlertRepo(client, self.keys, self.audit)
        self.cap = CapRepo(client, self.keys, self.audit)
        self.flags = FlagRepo(client, self.keys, self.audit)
        self.sms = SmsRepo(client, self.keys, self.audit)

    def try_lock(self, key: str, seconds: int) -> bool:
        """Take a lock that expires by itself; False if another process holds it."""
        return bool(self.redis.set(key, str(os.getpid()), nx=True, ex=seconds))

    def ping(self) -> bool:
        """Return True when Redis answers."""
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def delete_all(self) -> int:
        """Delete every key under this store's prefix (test clean-up); return how many."""
        deleted = 0
        batch: list[str] = []
        for key in self.redis.scan_iter(match=self.keys.pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += self.redis.unlink(*batch)
                batch.clear()
        if batch:
            deleted += self.redis.unlink(*batch)
        return deleted
