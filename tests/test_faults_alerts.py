"""Alerts go out once per recipient and channel: two workers and a slow receiver, a worker
killed mid-send (each on a redis-server the test owns)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from twilio.http.http_client import TwilioHttpClient

from crisis_console.delivery import Deliverer, Senders, Settings
from crisis_console.services import audit
from crisis_console.store import Store
from tests.servers import ROOT, free_port, private_redis

#: A lease far shorter than one request to the slow receiver: without renewal every send
#: would be taken over mid-request.
LEASE_MS = 1200
#: How long the slow receiver takes to answer each request.
SLOW_S = 1.5
#: Guards against a hung test, never waited out when all is well.
GUARD_S = 60
ACCOUNT = "AC" + "0" * 32
FROM = "+16175550311"


@dataclass
class Receiver:
    """A local HTTP server standing in for the webhook receiver and Twilio's Messages API.

    It counts every request per Idempotency-Key (webhooks) and keeps every message created
    (Twilio); it answers slowly, or holds the first request until released."""

    delay: float = 0.0
    hold_first: bool = False
    requests: Counter = field(default_factory=Counter)
    messages: list[dict[str, str]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def wait(self, first: bool) -> None:
        """Hold the first request until released (the test kills its sender meanwhile), or
        take the receiver's time over each request."""
        if first and self.hold_first:
            self.arrived.set()
            assert self.release.wait(GUARD_S)
        elif self.delay:
            time.sleep(self.delay)

    def texts_to(self) -> Counter:
        """Return how many messages Twilio created per recipient."""
        with self.lock:
            return Counter(m["To"] for m in self.messages)


def handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    """Return the request handler of ``receiver``'s server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the sender was killed while we held its request

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/Messages.json"):
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                with receiver.lock:
                    # Created on arrival, as Twilio does: the answer is what may get lost.
                    sid = f"SM{len(receiver.messages) + 1:032d}"
                    first = not receiver.messages
                    receiver.messages.append(
                        {**form, "sid": sid, "date_created": format_datetime(datetime.now(UTC))}
                    )
                receiver.wait(first)
                self.answer(201, {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]})
                return
            key = self.headers.get("Idempotency-Key", "")
            with receiver.lock:
                first = not receiver.requests
                receiver.requests[key] += 1
            receiver.wait(first)
            self.answer(200, {"ok": True})

        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            with receiver.lock:
                found = [
                    {
                        "sid": m["sid"],
                        "to": m["To"],
                        "from": m["From"],
                        "body": m["Body"],
                        "date_created": m["date_created"],
                        "status": "queued",
                    }
                    for m in receiver.messages
                    if m["To"] == query.get("To", m["To"]) and m["From"] == query.get("From", m["From"])
                ]
            self.answer(200, {"messages": found[::-1], "next_page_uri": None})

    return Handler


@contextmanager
def serving(receiver: Receiver) -> Iterator[Receiver]:
    """Run ``receiver`` on a free port until the block ends."""
    receiver.port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), handler_for(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()


class LocalTwilio(TwilioHttpClient):
    """The SDK's own HTTP client, sending to the local receiver instead of api.twilio.com."""

    def __init__(self, base: str):
        super().__init__(timeout=GUARD_S)
        self.base = base

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        return super().request(method, url.replace("https://api.twilio.com", self.base), *args, **kwargs)


def settings(base: str, lease_ms: int = LEASE_MS) -> Settings:
    """Deliver to the local receiver, with a short lease."""
    return Settings(
        twilio_sid=ACCOUNT,
        twilio_token="secret",
        twilio_from=FROM,
        twilio_http=LocalTwilio(base),
        lease_ms=lease_ms,
    )


def raise_alert(store: Store, deliveries: list[dict[str, str]]) -> list[int]:
    """Store an alert with these deliveries queued; return their ids."""
    entry = audit.entry("alerts", "alert.raised", "alert", rule="test", trigger="event.declared")
    fields = {"rule_id": "test", "trigger": "event.declared", "message": "Flood declared", "exercise": "0"}
    _, ids = store.alerts.create(fields, deliveries, entry, escalating=False)
    return ids


def worker_main() -> None:
    """Run one delivery worker until killed (the child process of the kill test)."""
    store = Store(
        redis.Redis.from_url(os.environ["FAULT_REDIS_URL"], decode_responses=True), os.environ["FAULT_PREFIX"]
    )
    deliverer = Deliverer(store, Senders(settings(os.environ["FAULT_BASE"])), os.environ["FAULT_CONSUMER"])
    while True:
        deliverer.run_once(block_ms=100)


@contextmanager
def worker_thread(url: str, prefix: str, base: str, name: str) -> Iterator[None]:
    """Run one delivery worker in a thread (its own connection) until the block ends."""
    store = Store(redis.Redis.from_url(url, decode_responses=True), prefix)
    deliverer = Deliverer(store, Senders(settings(base)), name)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            deliverer.run_once(block_ms=100)

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(GUARD_S)
        assert not thread.is_alive()
        store.redis.close()


def settled(store: Store, ids: list[int]) -> dict[int, dict[str, str]]:
    """Wait until every delivery has a final status; return them."""
    deadline = time.monotonic() + GUARD_S
    while True:
        found = {i: store.alerts.delivery(i) or {} for i in ids}
        if all(d.get("status") in ("sent", "delivered", "failed", "skipped") for d in found.values()):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


@pytest.fixture(scope="module")
def fault_redis() -> Iterator[str]:
    """A redis-server this module owns."""
    with private_redis() as (url, _stop):
        yield url


@pytest.fixture
def fault_store(fault_redis: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store on the module's server, under a key prefix of this test's own."""
    store = Store(redis.Redis.from_url(fault_redis, decode_responses=True), f"faults-{request.node.name}")
    yield store
    store.redis.close()


def test_two_workers_and_a_slow_receiver_send_each_delivery_once(fault_redis, fault_store):
    """20 webhook deliveries, two workers, a receiver taking 1.5 s per request and a 1.2 s lease:
    the one sending renews it, the other takes over only what waits unsent in a busy worker's
    batch, and the receiver sees exactly one request per delivery."""
    with serving(Receiver(delay=SLOW_S)) as receiver:
        hook = f"{receiver.url}/hook"
        ids = raise_alert(fault_store, [{"channel": "webhook", "to": hook} for _ in range(20)])
        with (
            worker_thread(fault_redis, fault_store.keys.prefix, receiver.url, "w1"),
            worker_thread(fault_redis, fault_store.keys.prefix, receiver.url, "w2"),
        ):
            done = settled(fault_store, ids)
        # Both workers have stopped: no request is still on its way.
        keys = {fault_store.keys.delivery(i) for i in ids}
        assert set(receiver.requests) == keys
        assert set(receiver.requests.values()) == {1}, receiver.requests
    assert {d["status"] for d in done.values()} == {"delivered"}
    assert {d["attempts"] for d in done.values()} == {"1"}
    assert {d["attempt_by"] for d in done.values()} == {"w1", "w2"}  # the work was shared
    assert all(d["response"] == "HTTP 200" for d in done.values())
    assert fault_store.alerts.pending_count() == 0


@pytest.mark.parametrize("channel", ["sms", "webhook"])
def test_a_worker_killed_mid_send_is_taken_over_without_a_duplicate(
    fault_redis, fault_store, tmp_path, channel
):
    """A worker process is killed (SIGKILL) while the receiver holds its first request: the
    other worker takes its deliveries over once the lease lapses. SMS: Twilio had already
    created the text, so the lookup finds it and nobody is texted twice. Webhook: the
    interrupted request is sent again with the same Idempotency-Key (at most twice)."""
    numbers = ["+16175550101", "+16175550102", "+16175550103"]
    with serving(Receiver(hold_first=True)) as receiver:
        targets = numbers if channel == "sms" else [f"{receiver.url}/hook"] * 3
        ids = raise_alert(fault_store, [{"channel": channel, "to": to} for to in targets])
        env = {
            **os.environ,
            "FAULT_REDIS_URL": fault_redis,
            "FAULT_PREFIX": fault_store.keys.prefix,
            "FAULT_BASE": receiver.url,
            "FAULT_CONSUMER": "victim",
        }
        log = tmp_path / "victim.log"
        with log.open("wb") as out:
            victim = subprocess.Popen(
                [sys.executable, "-c", "from tests.test_faults_alerts import worker_main; worker_main()"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            assert receiver.arrived.wait(GUARD_S), log.read_text()
            held = fault_store.alerts.delivery(ids[0]) or {}
            assert (held["status"], held["attempt_by"]) == ("sending", "victim")
            with worker_thread(fault_redis, fault_store.keys.prefix, receiver.url, "survivor"):
                victim.send_signal(signal.SIGKILL)
                victim.wait(GUARD_S)
                receiver.release.set()  # the held request's answer goes to a dead socket
                done = settled(fault_store, ids)
        finally:
            if victim.poll() is None:
                victim.kill()
                victim.wait(GUARD_S)
        texts, requests = receiver.texts_to(), dict(receiver.requests)
    first = done[ids[0]]
    assert first["attempts"] == "2" and first["attempt_by"] == "survivor"
    if channel == "sms":
        assert texts == Counter(numbers), texts  # one text each, the interrupted one included
        assert {d["status"] for d in done.values()} == {"sent"}
        assert first["confirmed_by"] == "lookup" and first["provider_id"] == "SM" + "1".rjust(32, "0")
        assert fault_store.alerts.by_provider(first["provider_id"]) == str(ids[0])
    else:
        keys = [fault_store.keys.delivery(i) for i in ids]
        assert requests == {keys[0]: 2, keys[1]: 1, keys[2]: 1}, requests
        assert {d["status"] for d in done.values()} == {"delivered"}
    assert fault_store.alerts.pending_count() == 0
