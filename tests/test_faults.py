"""The fault-injection suite: nothing is lost when Redis restarts or hangs or a process dies.

Every fault test runs real processes (``serve``, the worker, real python-socketio agents,
signed Twilio webhooks) against a redis-server the test owns on a free port, never the
shared one, and injects the fault for real (SIGKILL, SIGSTOP, a stopped server). The suite
is split by what fails:

| fault | file | asserts |
| --- | --- | --- |
| Redis killed and restarted (with its data) | ``test_faults_pushes.py`` | 0 pushes lost: every agent on both ``serve`` processes ends with every push once; 0 acks lost: each agent's ack is recorded once in every push's status |
| Redis paused (SIGSTOP) | ``test_faults_pushes.py`` | the same: 0 pushes lost, 0 acks lost; a lost publish and cut-off queue listeners are healed by the web processes alone |
| ``kill -9`` of a web process | this file | 0 pushes lost (the killed process's agents reconnect, to the survivor or to the restarted process, sending ``last_seq``, and end with every push once, in seq order); 0 acks lost or counted twice; the survivor's phone line answers TwiML throughout |
| ``serve`` stopped (SIGTERM) in the middle of requests | this file | new connections are refused at once (a proxy sends them elsewhere), and the request in progress and those the kernel had queued are answered, not cut off |
| ``kill -9`` of a worker mid-delivery | ``test_faults_alerts.py`` | 0 alerts duplicated: another worker takes the delivery over after its lease lapses and sends it once (also: two workers and a slow receiver send each delivery once) |
| SMS and Open311 during an outage | ``test_faults_intake.py`` | 0 complaints lost: each text gets a TwiML reply, is spooled under ``instance/`` and ingested exactly once when Redis is back (replayed twice, by two processes, or after a replay that died); Open311 answers 503 with ``Retry-After`` |
| ``kill -9`` of a process holding call counts that wait for Redis | ``test_faults_calls.py`` | 0 calls lost or counted twice: the counts were spooled under ``instance/spool/calls.jsonl`` too, and a fresh ``serve`` or ``serve --only webhooks`` on the same instance folder counts each call exactly once when Redis is back (the webhooks service also replays spooled texts) |
| the phone line under every fault (Redis refused, paused, killed and restarted; ``serve`` started with Redis down) | ``test_faults_phone.py`` | every voice webhook answers valid TwiML from the last known state within the guard (the design answers in ~0.25 s), the calls of the outage are counted once when Redis is back, and the API fails fast with 503 ``store_unavailable`` |
"""

from __future__ import annotations

import gc
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from crisis_console.sockets import names
from tests.helpers import live_announcement
from tests.test_faults_phone import ANSWER_GUARD, LINE, MESSAGES, ROUTE, sign, verbs
from tests.test_faults_pushes import Cluster, HealingAgent, _assert_nothing_lost, _report, running_cluster

pytestmark = [
    pytest.mark.served,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server of its own"),
]

#: The web process that is killed (its agents are the odd ones); the other one survives.
KILLED, SURVIVOR = 1, 0
#: Seconds between pushes (one pusher, through the survivor's API).
PUSH_EVERY = 0.25
#: Seconds between signed calls to the survivor's voice webhook.
CALL_EVERY = 0.1
#: Failure guard for each awaited signal (each takes well under a second or two when it works).
GUARD = 30.0


class Watch:
    """What one agent's socket did: connections made and the ``last_seq`` each handshake sent."""

    def __init__(self, agent: HealingAgent):
        self.agent = agent
        self.handshakes: list[int] = []  # the last_seq sent by each (re)connection
        self.connects = 0
        self.cursor_at_drop: int | None = None
        self.acks_pending_at_drop = 0  # shown, not yet confirmed, when its process died
        sent = agent.client.connection_auth  # the agent's own auth callable (token and cursor)

        def auth() -> dict:
            value = sent()
            with agent.lock:
                self.handshakes.append(value["last_seq"])
            return value

        agent.client.connection_auth = auth
        agent.client.on("connect", self._connected, namespace=names.AGENT)
        agent.client.on("disconnect", self._dropped, namespace=names.AGENT)
        self.connects = 1  # connected before the watch began

    def _connected(self) -> None:
        with self.agent.changed:
            self.connects += 1
            self.agent.changed.notify_all()

    def _dropped(self, *reason: object) -> None:
        with self.agent.changed:
            if self.cursor_at_drop is None:
                self.cursor_at_drop = self.agent.cursor
                self.acks_pending_at_drop = len(self.agent.pending_acks)
            self.agent.changed.notify_all()

    def fail_over(self, url: str) -> None:
        """Send this agent's next connection and its gap fetches to ``url`` (as a load balancer would)."""
        with self.agent.lock:
            self.agent.url = url
            self.agent.client.connection_url = url

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (bounded by :data:`GUARD`) until ``condition`` holds for this agent."""
        with self.agent.changed:
            if not self.agent.changed.wait_for(condition, timeout=GUARD):
                raise AssertionError(f"agent {self.agent.user_id}: timed out waiting for {what}")

    def shows_after(self, seq: int) -> bool:
        """Whether the agent shows a push with a seq above ``seq`` (push ids are seqs)."""
        with self.agent.lock:
            return any(push_id > seq for push_id in self.agent.shown)


class Caller(threading.Thread):
    """Signed calls to one web process's voice webhook, one after another, until stopped."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = f"{url}/twilio/voice"
        self.stopped = threading.Event()
        self.answered: list[float] = []  # when each good answer came (monotonic)
        self.slowest = 0.0
        self.problems: list[str] = []
        self.changed = threading.Condition()

    def run(self) -> None:
        n = 0
        while not self.stopped.is_set():
            n += 1
            params = {"CallSid": f"CA-kill-{n}", "From": "+16175550123", "To": LINE}
            started = time.monotonic()
            try:
                answer = requests.post(
                    self.url, data=params, headers=sign(self.url, params), timeout=ANSWER_GUARD
                )
                took = time.monotonic() - started
                if answer.status_code != 200 or verbs(answer.content) != ["Gather", "Redirect"]:
                    self.problems.append(f"call {n}: {answer.status_code} {answer.text[:200]}")
                elif MESSAGES["en"] not in answer.text:
                    self.problems.append(f"call {n}: not the live announcement: {answer.text[:200]}")
                else:
                    with self.changed:
                        self.answered.append(time.monotonic())
                        self.slowest = max(self.slowest, took)
                        self.changed.notify_all()
            except Exception as exc:  # a timeout past the guard, a refused connection, bad XML
                self.problems.append(f"call {n}: {exc!r}")
            self.stopped.wait(CALL_EVERY)

    def wait_answered_after(self, moment: float) -> None:
        """Wait (bounded) until a call placed after ``moment`` was answered."""
        with self.changed:
            if not self.changed.wait_for(lambda: any(at > moment for at in self.answered), timeout=GUARD):
                raise AssertionError(f"no call answered after the kill: {self.problems[:3]}")


class Pusher(threading.Thread):
    """Push the script through the survivor's API every :data:`PUSH_EVERY` seconds until stopped."""

    def __init__(self, cluster: Cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stopped = threading.Event()
        self.attempts = 0
        self.refused = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            self.attempts += 1
            if self.cluster.push(SURVIVOR) is None:
                self.refused += 1
            self.stopped.wait(PUSH_EVERY)


def _wait_stored(cluster: Cluster, seq: int) -> None:
    deadline = time.monotonic() + GUARD
    while cluster.last_seq() < seq:
        assert time.monotonic() < deadline, f"push {seq} was never stored"
        time.sleep(0.02)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Redis, two ``serve`` processes and 20 agents, half on each, with a live announcement."""
    with running_cluster(tmp_path) as running:
        live_announcement(running.store, LINE, MESSAGES, ROUTE)
        yield running
    # The client libraries can drop, unclosed, a socket whose server was killed under it:
    # collect it here, under this test's filter, rather than in whichever test runs next.
    gc.collect()


@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_a_web_process_killed_and_restarted_loses_no_push_and_no_ack(cluster: Cluster):
    """``kill -9`` of one of two ``serve`` processes while pushes are made through the other:
    half of its agents fail over to the survivor, half wait for it to be restarted; each
    reconnects sending ``last_seq`` and every agent ends with every push once, in seq order,
    each ack counted once, while the survivor's phone line answers every call."""
    watches = [Watch(agent) for agent in cluster.agents]
    orphans = [w for n, w in enumerate(watches) if cluster.agents[n].url == cluster.urls[KILLED]]
    movers, waiters = orphans[: len(orphans) // 2], orphans[len(orphans) // 2 :]
    assert movers and waiters
    caller, pusher = Caller(cluster.urls[SURVIVOR]), Pusher(cluster)
    before = cluster.last_seq()
    caller.start()
    pusher.start()
    try:
        # Everyone is live on both processes, a few pushes in (acknowledgements of the latest still pending).
        _wait_stored(cluster, before + 3)
        for watch in watches:
            watch.wait(lambda w=watch: w.shows_after(before + 2), "the first pushes")

        # kill -9, with pushes in flight and acknowledgements pending (they come 0.1–1.5 s after each push).
        for watch in movers:
            watch.fail_over(cluster.urls[SURVIVOR])
        killed_at = time.monotonic()
        cluster.kill(KILLED)
        killed_seq = cluster.last_seq()  # every later push is stored after the process died
        _wait_stored(cluster, killed_seq + 2)
        for watch in movers:
            watch.wait(lambda w=watch: w.connects >= 2 and w.shows_after(killed_seq), "failing over")
        for watch in waiters:
            watch.wait(lambda w=watch: not w.agent.client.connected, "its socket to drop")
        caller.wait_answered_after(killed_at)
        assert not any(w.shows_after(killed_seq) for w in waiters), "a push reached a dead process"

        # The dead process comes back on its port; its remaining agents reconnect to it.
        cluster.restart(KILLED)
        restarted_seq = cluster.last_seq()
        _wait_stored(cluster, restarted_seq + 2)
        for watch in waiters:
            watch.wait(
                lambda w=watch: w.connects >= 2 and w.shows_after(restarted_seq), "the restarted process"
            )
        _wait_stored(cluster, cluster.last_seq() + 3)  # a few more pushes with everyone back
    finally:
        pusher.stopped.set()
        pusher.join(30)

    expected = cluster.stored_after(before)
    for agent in cluster.agents:
        with agent.changed:
            agent.changed.wait_for(lambda a=agent: a.whole(expected), timeout=GUARD)
    caller.stopped.set()
    caller.join(10)

    outcome = {"expected": expected, "pushes": pusher.attempts, "refused": pusher.refused}
    _report("kill -9 of a web process", cluster, outcome)
    pending = sum(w.acks_pending_at_drop for w in orphans)
    unordered = sum(1 for a in cluster.agents if [p for p in a.shown if p in set(expected)] != expected)
    print(
        f"{pending} acks pending on the killed process's agents when it died; {unordered} agents got "
        f"pushes out of seq order (the page orders its cards by seq); calls answered: "
        f"{len(caller.answered)}, slowest {caller.slowest:.3f} s"
    )
    assert pending, "the kill met no pending acknowledgement"
    assert not caller.problems, caller.problems[:5]
    assert pusher.refused == 0, "the survivor refused a push"
    _assert_nothing_lost(cluster, outcome)
    for watch in orphans:
        # It reconnected once, and the handshake carried the cursor it had when its process died.
        assert watch.connects == 2, f"agent {watch.agent.user_id} connected {watch.connects} times"
        assert watch.cursor_at_drop is not None and watch.handshakes[-1] >= watch.cursor_at_drop
    # How the waiters caught up is reported, not asserted: each either got what it missed from
    # its handshake's replay (last_seq below the restart) or, when its retry fetched before its
    # socket came back on a busy machine, over HTTP; either way it ends with every push once
    # (asserted above). The replay itself is tested exactly in tests/test_pushes.py.
    replayed = sum(1 for w in waiters if w.handshakes[-1] < restarted_seq)
    print(f"{replayed} of {len(waiters)} waiting agents caught up by their handshake's replay")


def test_a_stopping_web_process_answers_what_the_kernel_had_queued(
    redis_url: str, run_prefix: str, tmp_path: Path
) -> None:
    """SIGTERM while requests wait in the listening socket's queue: each is answered, none reset.

    The process is frozen (SIGSTOP) so that the requests can only be queued by the kernel,
    then told to stop and woken: closing the listener at once would reset them, and nginx
    would answer a POST that met a reset with a 502 (it never resends one)."""
    from tests.conftest import console_process

    with console_process(redis_url, f"{run_prefix}:drain", tmp_path) as served:
        port = int(served.url.rsplit(":", 1)[1])
        served.process.send_signal(signal.SIGSTOP)
        waiting = []
        try:
            for _ in range(3):
                connection = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
                connection.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                waiting.append(connection)
            served.process.send_signal(signal.SIGTERM)
        finally:
            served.process.send_signal(signal.SIGCONT)
        answers = [_read_all(connection) for connection in waiting]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [a[:80] for a in answers]
        assert served.process.wait(GUARD) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=GUARD).close()


def _read_all(connection: socket.socket) -> bytes:
    """Read one answer to its end (the server closes: Connection: close), or b"" on a reset."""
    received = b""
    with connection:
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except ConnectionResetError:
            return b""
    return received


def test_a_stopping_web_process_finishes_the_request_it_is_reading(
    redis_url: str, run_prefix: str, tmp_path: Path
) -> None:
    """SIGTERM in the middle of a request: new connections are refused at once, and the request
    in progress is still answered (the process used to exit under it: a 502 behind nginx)."""
    from tests.conftest import console_process

    body = b'{"username": "nobody-here", "password": "not-the-password"}'
    with console_process(redis_url, f"{run_prefix}:inflight", tmp_path) as served:
        port = int(served.url.rsplit(":", 1)[1])
        reading = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
        head = (
            "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        reading.sendall(head.encode() + body[:10])  # the rest comes after the SIGTERM
        # Connections are accepted in order: once a later one is answered, the first is in
        # the middle of its request (the handler waits for the rest of the body).
        assert requests.get(f"{served.url}/login", timeout=GUARD).status_code == 200
        served.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GUARD
        while True:  # the listener closes first: a new connection is refused
            try:
                socket.create_connection(("127.0.0.1", port), timeout=GUARD).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "still accepting after SIGTERM"
            time.sleep(0.02)
        reading.sendall(body[10:])
        answer = _read_all(reading)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"field"' in answer or b'"error"' in answer
        assert served.process.wait(GUARD) == 0
