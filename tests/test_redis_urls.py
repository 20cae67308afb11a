"""REDIS_URL: every form parses into one target that builds the store's, the limiter's and the
Socket.IO queue's clients alike, and a bad one is one line naming REDIS_URL, password masked."""

from __future__ import annotations

import pytest
import redis
import redis.sentinel
from click.testing import CliRunner

from crisis_console.cli import cli
from crisis_console.store import BadRedisUrl, RedisTarget, StoreUnavailable, describe, target_of
from crisis_console.store.breaker import Breaker
from crisis_console.store.connection import BlockingSentinelPool, phone_client, redact


def parse(url: str, **settings: str) -> RedisTarget:
    """Parse with only the given settings (none from the environment)."""
    return RedisTarget.parse(url, settings)


def test_a_plain_url_gives_host_port_database_and_credentials():
    """redis://user:password@host:port/db: all of it, with the usual defaults."""
    target = parse("redis://ops:s%40cret@redis.example:6380/3")
    assert (target.kind, target.hosts, target.db) == ("tcp", (("redis.example", 6380),), 3)
    assert (target.username, target.password, target.tls) == ("ops", "s@cret", None)
    assert parse("redis://localhost").hosts == (("localhost", 6379),) and parse("redis://localhost").db == 0


def test_a_tls_url_takes_the_ca_and_client_certificate_settings(tmp_path):
    """rediss:// with CRISIS_REDIS_CA_CERT/CERT/KEY: certificates checked, host name too unless skipped."""
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_text("x")
    target = parse(
        "rediss://redis.example:6380/0",
        CRISIS_REDIS_CA_CERT=str(ca),
        CRISIS_REDIS_CERT=str(cert),
        CRISIS_REDIS_KEY=str(key),
    )
    options = target.connection_options()
    assert options["ssl_ca_certs"] == str(ca) and options["ssl_certfile"] == str(cert)
    assert options["ssl_keyfile"] == str(key) and options["ssl_cert_reqs"] == "required"
    assert options["ssl_check_hostname"] is True
    skipping = parse("rediss://h", REDIS_CA_CERT=str(ca), REDIS_TLS_SKIP_HOSTNAME_CHECK=True)
    assert skipping.connection_options()["ssl_check_hostname"] is False
    assert isinstance(target.pool(), redis.BlockingConnectionPool)
    assert target.pool().connection_class is redis.SSLConnection


def test_tls_settings_that_cannot_work_are_refused_naming_them(tmp_path):
    """A missing file, a certificate without its key, or certificates for a plain URL."""
    with pytest.raises(BadRedisUrl, match="CRISIS_REDIS_CA_CERT names no file"):
        parse("rediss://h", CRISIS_REDIS_CA_CERT=str(tmp_path / "missing.pem"))
    (tmp_path / "c.pem").write_text("x")
    with pytest.raises(BadRedisUrl, match="set both or neither"):
        parse("rediss://h", CRISIS_REDIS_CERT=str(tmp_path / "c.pem"))
    with pytest.raises(BadRedisUrl, match="not rediss://"):
        parse("redis://h", CRISIS_REDIS_CA_CERT=str(tmp_path / "c.pem"))


def test_a_unix_socket_url_gives_the_path_and_database():
    """unix:///path?db=N (and redis+unix://, the limiter's spelling)."""
    target = parse("unix:///run/redis/redis.sock?db=2")
    assert (target.kind, target.path, target.db) == ("unix", "/run/redis/redis.sock", 2)
    assert parse("redis+unix:///run/redis/redis.sock").path == "/run/redis/redis.sock"
    assert target.pool().connection_class is redis.UnixDomainSocketConnection


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database():
    """redis+sentinel://h:p,h:p/mastername/db; the Sentinels' password is a setting of its own."""
    target = parse(
        "redis+sentinel://:masterpw@10.0.0.1:26379,10.0.0.2/mymaster/4", CRISIS_REDIS_SENTINEL_PASSWORD="spw"
    )
    assert target.kind == "sentinel" and target.service == "mymaster" and target.db == 4
    assert target.hosts == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (target.password, target.sentinel_password) == ("masterpw", "spw")
    assert parse("redis+sentinel://a:1/m?sentinel_password=q").sentinel_password == "q"
    pool = target.pool()
    assert isinstance(pool, BlockingSentinelPool) and isinstance(pool, redis.BlockingConnectionPool)
    assert pool.service_name == "mymaster" and pool.connection_kwargs["db"] == 4
    assert pool.connection_kwargs["password"] == "masterpw"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["password"] for s in sentinels] == ["spw", "spw"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://redis.example", "unsupported scheme http://"),
        ("redis.example:6379", "unsupported scheme"),
        ("redis://h:port/0", "bad port"),
        ("redis://h/zero", "database must be a number"),
        ("redis://h/0/1", "the path is the database number only"),
        ("unix://", "needs the socket's path"),
        ("redis+sentinel:///mymaster", "name at least one Sentinel"),
        ("redis+sentinel://h:26379", "the master's name"),
        ("redis+sentinel://h:26379/m/x", "database must be a number"),
    ],
)
def test_a_bad_url_is_one_line_naming_redis_url(url, reason):
    """Each mistake says REDIS_URL and what is wrong, on one line."""
    with pytest.raises(BadRedisUrl) as caught:
        parse(url)
    message = str(caught.value)
    assert message.startswith("REDIS_URL ") and reason in message and "\n" not in message
    assert isinstance(caught.value, StoreUnavailable)  # the CLI's one-line exit path


def test_passwords_never_appear_in_descriptions_or_errors():
    """The password is masked in describe(), in errors and in the URIs handed to libraries."""
    secret = "hunter2"
    for url in (
        f"redis://:{secret}@h:1/0",
        f"rediss://ops:{secret}@h:1/0",
        f"redis+sentinel://:{secret}@a:1,b:2/m/0?sentinel_password={secret}",
    ):
        target = parse(url)
        assert secret not in target.describe() and secret not in describe(url, "/x")
        assert secret not in repr(target)
        assert secret not in target.limiter_storage()[0] and secret not in target.message_queue()[0]
        assert secret not in redact(url)
    with pytest.raises(BadRedisUrl) as caught:
        parse(f"redis://:{secret}@h:nope/0")
    assert secret not in str(caught.value)


def test_the_limiter_and_the_queue_get_the_same_server_tls_and_credentials(tmp_path):
    """Flask-Limiter's URI and options, python-socketio's URL and redis_options: same target."""
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    tls = parse("rediss://:pw@h:6380/2", CRISIS_REDIS_CA_CERT=str(ca))
    uri, options = tls.limiter_storage()
    assert uri == "rediss://h:6380/2" and options["ssl_ca_certs"] == str(ca) and options["password"] == "pw"
    assert options["socket_timeout"] and options["socket_connect_timeout"]
    url, queue = tls.message_queue()
    assert url == "rediss://h:6380/2" and queue["ssl_ca_certs"] == str(ca) and queue["password"] == "pw"
    assert "socket_timeout" not in queue  # its listener waits on pub/sub

    sentinel = parse("redis+sentinel://:pw@a:1,b:2/mymaster/3")
    uri, options = sentinel.limiter_storage()
    assert uri == "redis+sentinel://a:1,b:2/mymaster"
    assert options["db"] == 3 and options["password"] == "pw" and options["use_replicas"] is False
    assert options["sentinel_kwargs"]["password"] is None  # not the master's password
    url, queue = sentinel.message_queue()
    assert url == "redis+sentinel://a:1,b:2/3/mymaster"  # python-socketio's order: db, then name
    assert queue["password"] == "pw" and "db" not in queue

    unix = parse("unix:///tmp/r.sock?db=1")
    assert unix.limiter_storage()[0] == "redis+unix:///tmp/r.sock?db=1"
    assert unix.message_queue()[0] == "unix:///tmp/r.sock?db=1"


def test_python_socketio_and_limits_read_the_urls_as_meant():
    """The libraries' own parsers agree with what the target hands them."""
    from limits.storage import storage_from_string
    from socketio.redis_manager import parse_redis_sentinel_url

    target = parse("redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/3")
    sentinels, service, kwargs = parse_redis_sentinel_url(target.message_queue()[0])
    assert sentinels == [("127.0.0.1", 1), ("127.0.0.1", 2)] and service == "mymaster" and kwargs == {"db": 3}
    uri, options = target.limiter_storage()
    storage = storage_from_string(uri, key_prefix="x", **options)
    assert storage.service_name == "mymaster"
    master = storage.storage.connection_pool
    assert master.connection_kwargs["db"] == 3 and master.connection_kwargs["password"] == "pw"
    assert storage.sentinel.sentinels[0].connection_pool.connection_kwargs.get("password") is None


def test_the_phone_client_reaches_the_same_server_with_short_deadlines():
    """For every kind of URL the phone path's client is a twin with its own pool and deadlines."""
    for url in ("redis://:pw@h:1/2", "unix:///tmp/r.sock?db=2", "redis+sentinel://:pw@a:1,b:2/m/2"):
        target = parse(url)
        main = target.client(decode_responses=True)
        main.crisis_target = target
        phone = phone_client(main, Breaker("test"), socket_timeout=0.25)
        kwargs = phone.connection_pool.connection_kwargs
        assert kwargs["db"] == 2 and kwargs["socket_timeout"] == 0.25 and kwargs["decode_responses"]
        assert phone.connection_pool is not main.connection_pool
        assert type(phone.connection_pool) is type(main.connection_pool)
        if target.kind == "sentinel":
            assert phone.connection_pool.service_name == "m"
            manager = phone.connection_pool.sentinel_manager
            assert manager.sentinels[0].connection_pool.connection_kwargs["socket_timeout"] <= 0.3


def test_a_client_made_elsewhere_still_has_a_target(redis_url):
    """A store over a client the caller built (tests, tools) derives its target from the pool."""
    client = redis.Redis.from_url(redis_url)
    target = target_of(client)
    assert target.kind in ("tcp", "unix") and target.db == client.connection_pool.connection_kwargs["db"]
    client.close()


@pytest.mark.parametrize("only", [[], ["--only", "webhooks"]])
def test_serve_with_a_bad_url_prints_one_line_and_no_traceback(only, monkeypatch, tmp_path):
    """``serve`` (and ``serve --only webhooks``) on a malformed REDIS_URL: one error line naming
    it, password masked, exit 2."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://:hunter2@127.0.0.1:26379")
    result = CliRunner().invoke(cli, ["serve", "--port", "1", *only])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: REDIS_URL redis+sentinel://:***@127.0.0.1:26379")
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_every_redis_setting_is_read_by_config_under_its_attribute_name(monkeypatch, tmp_path):
    """Config carries each CRISIS_REDIS_* setting (as REDIS_*), and the parser reads it there."""
    from crisis_console.config import Config
    from crisis_console.store.connection import SETTINGS

    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("CRISIS_REDIS_CA_CERT", str(ca))
    monkeypatch.setenv("CRISIS_REDIS_TLS_SKIP_HOSTNAME_CHECK", "yes")
    monkeypatch.setenv("CRISIS_REDIS_SENTINEL_PASSWORD", "spw")
    config = Config()
    for name in SETTINGS:
        assert hasattr(config, name.removeprefix("CRISIS_")), name
    target = RedisTarget.parse("rediss://h", vars(config))
    assert target.tls is not None and target.tls.ca_cert == str(ca) and not target.tls.check_hostname
    monkeypatch.delenv("CRISIS_REDIS_CA_CERT")  # certificates beside a non-TLS URL are refused
    assert RedisTarget.parse("redis+sentinel://a:1/m", vars(Config())).sentinel_password == "spw"
