"""REDIS_URL=rediss://: the store, the phone path, the rate limiter and the Socket.IO queue all
speak TLS to a real redis-server that accepts nothing else (``--port 0``).

The certificates (a CA, a server and a client certificate) are made with ``openssl`` in a
temporary folder; each server is the test's own.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts
from crisis_console.sockets import names
from crisis_console.store import Store, StoreUnavailable, connect
from tests.conftest import TWILIO_TOKEN
from tests.helpers import PASSWORD, TwilioSigner, csrf_from, live_announcement, unique_name
from tests.servers import (
    Certificates,
    OwnedTlsRedis,
    free_port,
    make_certificates,
    start_console,
    stop_console,
)

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("openssl") is None,
    reason="needs redis-server (built with TLS) and openssl",
)

LINE = "+16175550311"
MESSAGES = {"en": "Shelters are open at every school.", "es": "Los refugios están abiertos."}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA and the server and client certificates it signed."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_redis(tmp_path: Path, certificates: Certificates) -> Iterator[OwnedTlsRedis]:
    """A TLS-only redis-server that does not ask for client certificates."""
    server = OwnedTlsRedis(tmp_path / "redis", certificates)
    server.start()
    yield server
    server.stop()


def test_the_store_phone_path_and_limiter_all_use_the_tls_server(
    tls_redis, certificates, tmp_path, monkeypatch
):
    """An in-process app on rediss://: it stores, answers and counts a call, and throttles
    sign-in with counters kept in that same TLS server."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    prefix = "tls"
    app = create_app(
        TestConfig(
            REDIS_URL=tls_redis.url,
            REDIS_CA_CERT=str(certificates.ca),
            CRISIS_KEY_PREFIX=prefix,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        )
    )
    store: Store = app.extensions[STORE_EXTENSION]
    assert store.target.tls is not None and store.ping()
    announcement_id = live_announcement(store, LINE, MESSAGES, {"type": "dial", "number": "+16175550100"})

    twilio = TwilioSigner(app.test_client(), TWILIO_TOKEN)
    params = {"CallSid": "CA-tls", "From": "+16175550123", "To": LINE}
    answer = twilio.post("/twilio/voice", params)
    assert answer.status_code == 200 and MESSAGES["en"] in answer.get_data(as_text=True)
    assert twilio.post("/twilio/voice/status", {**params, "CallStatus": "completed"}).status_code == 200
    check = tls_redis.client()
    deadline = time.monotonic() + 10
    while Store(check, prefix).announcements.stats(announcement_id).get("deflected") != 1:
        assert time.monotonic() < deadline, "the call was not counted in the TLS server"
        time.sleep(0.05)

    browser = app.test_client()
    form = {"username": "nobody", "password": "wrong", "csrf_token": csrf_from(browser.get("/login").text)}
    assert browser.post("/login", data=form).status_code in (200, 401)
    limits = list(check.scan_iter(match=f"{store.keys.rate_limits_prefix()}*"))
    assert limits, "the limiter kept no counter in the TLS server"
    check.close()


def test_a_plain_url_to_the_tls_port_fails_with_one_clear_line(tls_redis, tmp_path):
    """redis:// to a TLS port is refused at start with the URL and a hint, not a hang or a traceback."""
    url = f"redis://127.0.0.1:{tls_redis.port}/0"
    with pytest.raises(StoreUnavailable) as caught:
        connect(url, tmp_path, settings={})
    message = str(caught.value)
    assert message.startswith(f"cannot reach Redis at {url}: ") and "\n" not in message
    assert "rediss://" in message


def test_a_server_certificate_the_ca_did_not_sign_is_refused(tls_redis, tmp_path):
    """Without CRISIS_REDIS_CA_CERT the test CA is unknown: the certificate check fails, clearly."""
    with pytest.raises(StoreUnavailable, match="certificate verify failed"):
        connect(tls_redis.url, tmp_path, settings={})


def test_the_host_name_is_checked_unless_the_clearly_named_setting_skips_it(tmp_path):
    """A certificate for another name is refused; CRISIS_REDIS_TLS_SKIP_HOSTNAME_CHECK accepts
    it (still signed by the CA)."""
    other = make_certificates(tmp_path / "other", server_name="redis.elsewhere.example")
    server = OwnedTlsRedis(tmp_path / "redis", other)
    server.start()
    try:
        with pytest.raises(StoreUnavailable, match=r"[Hh]ostname mismatch|doesn't match"):
            connect(server.url, tmp_path, settings={"CRISIS_REDIS_CA_CERT": str(other.ca)})
        settings = {"CRISIS_REDIS_CA_CERT": str(other.ca), "CRISIS_REDIS_TLS_SKIP_HOSTNAME_CHECK": "yes"}
        assert connect(server.url, tmp_path, settings=settings).ping()
    finally:
        server.stop()


def test_a_server_that_requires_client_certificates_gets_them(tmp_path, certificates):
    """--tls-auth-clients yes: without CRISIS_REDIS_CERT/KEY the handshake fails; with them, all works."""
    server = OwnedTlsRedis(tmp_path / "redis", certificates, client_certificates=True)
    server.start()
    try:
        with pytest.raises(StoreUnavailable):
            connect(server.url, tmp_path, settings={"CRISIS_REDIS_CA_CERT": str(certificates.ca)})
        settings = {
            "CRISIS_REDIS_CA_CERT": str(certificates.ca),
            "CRISIS_REDIS_CERT": str(certificates.client_cert),
            "CRISIS_REDIS_KEY": str(certificates.client_key),
        }
        client = connect(server.url, tmp_path, settings=settings)
        assert client.set("cc-tls-probe", "1") and client.get("cc-tls-probe") == "1"
        uri, options = Store(client, "tls").target.limiter_storage()
        assert uri.startswith("rediss://") and options["ssl_certfile"] == str(certificates.client_cert)
    finally:
        server.stop()


@pytest.mark.served
def test_a_push_through_one_serve_process_reaches_an_agent_on_another_over_tls(
    tls_redis, certificates, tmp_path
):
    """Two real ``serve`` processes on the TLS-only server: a push made through one is published
    on the Socket.IO queue over TLS and reaches an agent connected to the other."""
    prefix = f"tlsqueue-{time.monotonic_ns()}"
    store = Store(tls_redis.client(), prefix)
    accounts = Accounts(store)
    writer = accounts.create_user(unique_name("manager"), Role.MANAGER, PASSWORD, actor="test")
    reviewer = accounts.create_user(unique_name("manager"), Role.MANAGER, PASSWORD, actor="test")
    agent_user = accounts.create_user(unique_name("agent"), Role.AGENT, PASSWORD, actor="test")
    env = {
        **os.environ,
        "REDIS_URL": tls_redis.url,
        "CRISIS_REDIS_CA_CERT": str(certificates.ca),
        "CRISIS_KEY_PREFIX": prefix,
        "CRISIS_INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "tls-test-secret",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "CRISIS_SEED_CATALOGUE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    ports = [free_port(), free_port()]
    started: dict[int, object] = {}
    starters = [
        threading.Thread(
            target=lambda i=i: started.update({i: start_console(env, tmp_path / f"serve-{i}.log", ports[i])})
        )
        for i in range(2)
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    agent = socketio.Client(reconnection=False)
    try:
        assert len(started) == 2, "a console did not start (see its log)"
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        writing = requests.Session()
        writing.headers["Authorization"] = f"Bearer {accounts.create_token(writer.username, actor='test')}"
        reviewing = requests.Session()
        reviewing.headers["Authorization"] = (
            f"Bearer {accounts.create_token(reviewer.username, actor='test')}"
        )
        script = writing.post(
            f"{first}/api/v1/scripts",
            json={"title": "Shelters", "topic": "Safety", "language": "en", "body": "Open."},
            timeout=10,
        ).json()
        writing.post(f"{first}/api/v1/scripts/{script['id']}/submit", timeout=10).raise_for_status()
        reviewing.post(f"{first}/api/v1/scripts/{script['id']}/approve", timeout=10).raise_for_status()

        received = threading.Event()
        pushes: list[dict] = []
        agent.on(names.SCRIPT_PUSHED, lambda message: (pushes.append(message), received.set()), names.AGENT)
        token = accounts.create_token(agent_user.username, actor="test")
        agent.connect(
            second, namespaces=[names.AGENT], transports=["websocket"], auth={"token": token}, wait_timeout=10
        )
        # python-socketio starts a process's queue listener at its first connection: the
        # agent's process is then subscribed, over TLS (the server takes nothing else).
        channel = f"{prefix}-socketio"
        deadline = time.monotonic() + 20
        while store.redis.pubsub_numsub(channel)[0][1] < 1:
            assert time.monotonic() < deadline, "the agent's serve process did not subscribe over TLS"
            time.sleep(0.05)
        pushed = writing.post(
            f"{first}/api/v1/scripts/{script['id']}/push", json={"audience": "all"}, timeout=10
        )
        assert pushed.status_code == 201, pushed.text
        # Well inside the healing manager's 10 s check: it came by the queue, not a heal.
        assert received.wait(5), "the push did not reach the agent on the other process"
        assert pushes[0]["seq"] == pushed.json()["seq"]
        for i in range(2):
            log = (tmp_path / f"serve-{i}.log").read_text()
            assert "Cannot receive from redis" not in log and "Cannot publish to redis" not in log, log
    finally:
        agent.disconnect()
        for process in started.values():
            stop_console(process)  # type: ignore[arg-type]
        store.redis.close()


def test_an_app_made_after_a_tls_app_limits_sign_in_over_its_own_plain_connection(
    tls_redis, certificates, redis_url, tmp_path, monkeypatch
):
    """Flask-Limiter is one module-level object: a TLS app's ssl_* options must not reach the
    storage of the next app (on a plain redis://), whose sign-in would then fail."""
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    create_app(
        TestConfig(REDIS_URL=tls_redis.url, REDIS_CA_CERT=str(certificates.ca), CRISIS_KEY_PREFIX="tls1")
    )
    prefix = f"plain-after-tls-{time.monotonic_ns()}"
    plain = create_app(TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix))
    browser = plain.test_client()
    form = {"username": "nobody", "password": "wrong", "csrf_token": csrf_from(browser.get("/login").text)}
    assert browser.post("/login", data=form).status_code in (200, 401)
    store: Store = plain.extensions[STORE_EXTENSION]
    assert list(store.redis.scan_iter(match=f"{store.keys.rate_limits_prefix()}*"))
    store.delete_all()
