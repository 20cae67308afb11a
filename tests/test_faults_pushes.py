"""Faults: no push lost and no acknowledgement lost when Redis restarts or hangs.

Real processes: a redis-server this module owns (append-only, fsync always, so a restart
keeps its data), two ``serve`` processes on it, and real python-socketio agents split
across both that heal gaps as the agent page does (:class:`HealingAgent`) and retry their
acknowledgements until the server confirms. A pusher keeps pushing through each fault.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
import socketio

from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts
from crisis_console.services.pushes import Pushes
from crisis_console.sockets import names
from crisis_console.store import Store
from tests.conftest import TWILIO_TOKEN
from tests.helpers import PASSWORD, unique_name
from tests.servers import OwnedRedis, free_port, start_console, stop_console

pytestmark = pytest.mark.served

AGENTS = 20
#: Seconds Redis stays stopped or paused.
FAULT_SECONDS = 3.0
#: Failure guard for "every agent is whole again" (it takes well under a second when it works).
SETTLE_TIMEOUT = 30.0


class HealingAgent:
    """An agent client that heals by sequence exactly as the agent page does (agent.js).

    - ``cursor``: every push up to it that was addressed to this agent has been shown.
    - A push with seq ``cursor + 1`` is shown at once; one further ahead means a gap: it
      fetches ``GET /pushes?after_seq=cursor`` and shows what it lacks, then the live one,
      in seq order, and moves the cursor to the answer's ``last_seq``. A failed fetch is
      retried with backoff (the live push is shown meanwhile).
    - A push already shown is never shown again.
    - Reconnecting sends ``last_seq = cursor`` (the server replays what came after).
    - Each shown push is acknowledged after a short human pause and the acknowledgement
      is retried with backoff until the server confirms (``{"ok": true}``).
    """

    def __init__(self, url: str, token: str, user_id: int, cursor: int):
        #: Off: the agent only takes what the socket brings (to see the servers heal alone).
        self.gap_fill = True
        self.url = url
        self.token = token
        self.user_id = user_id
        self.cursor = cursor
        self.shown: list[int] = []  # push ids in the order shown
        self.by_socket = 0  # pushes first seen on the socket (not by a fetch)
        self.fetched = 0  # pushes first seen through a gap fetch
        self.duplicates = 0  # pushes received again and ignored
        self.connects = 0  # connections to /agent (more than one: it reconnected)
        self.ack_attempts = 0
        self.acked: set[int] = set()
        self.pending_acks: dict[int, float] = {}  # push id -> when to (re)try
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.gap_open = False
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.stopped = threading.Event()
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
        self.client.on(names.SCRIPT_PUSHED, self._on_pushed, namespace=names.AGENT)
        self.client.on("connect", self._on_connect, namespace=names.AGENT)
        self.worker = threading.Thread(target=self._work, daemon=True)

    def connect(self) -> None:
        """Connect to /agent, sending the cursor on every (re)connection."""
        self.client.connect(
            self.url,
            namespaces=[names.AGENT],
            transports=["websocket"],
            auth=lambda: {"token": self.token, "last_seq": self.cursor},
            wait_timeout=10,
        )
        self.worker.start()

    def close(self) -> None:
        """Stop retrying and disconnect."""
        self.stopped.set()
        self.client.disconnect()

    # --- receiving ---------------------------------------------------------------------

    def _on_connect(self) -> None:
        with self.lock:
            self.connects += 1

    def _show(self, message: dict, *, fetched: bool) -> None:
        push_id = message["push_id"]
        if push_id in self.shown:
            self.duplicates += 1
            return
        self.shown.append(push_id)
        if fetched:
            self.fetched += 1
        else:
            self.by_socket += 1
        self.pending_acks[push_id] = time.monotonic() + random.uniform(0.1, 1.5)
        self.changed.notify_all()

    def _on_pushed(self, message: dict) -> None:
        with self.lock:
            seq = message["seq"]
            if seq <= self.cursor + 1 or self.gap_open or not self.gap_fill:
                self._show(message, fetched=False)
                if seq == self.cursor + 1 and not self.gap_open:
                    self.cursor = seq
                return
            self.gap_open = True
        # A gap: fill it before showing the live push, in seq order (outside the lock: HTTP).
        # The fetch usually brings the live push too; if it failed, show it now anyway.
        self._fill()
        with self.lock:
            if message["push_id"] not in self.shown:
                self._show(message, fetched=False)

    def _fill(self) -> bool:
        """Fetch what came after the cursor; return whether it worked."""
        with self.lock:
            after = self.cursor
        try:
            response = self.http.get(f"{self.url}/api/v1/pushes", params={"after_seq": after}, timeout=5)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError):
            return False
        with self.lock:
            for message in body["pushes"]:
                self._show(message, fetched=True)
            self.cursor = max(self.cursor, body["last_seq"])
            self.gap_open = False
            self.changed.notify_all()
        return True

    # --- retries -------------------------------------------------------------------------

    def _work(self) -> None:
        """Retry an open gap and pending acknowledgements, with backoff, until confirmed."""
        fill_wait = 0.2
        waits: dict[int, float] = {}
        while not self.stopped.wait(0.05):
            with self.lock:
                gap = self.gap_open
                now = time.monotonic()
                due = [push_id for push_id, at in self.pending_acks.items() if at <= now]
            if gap and not self._fill():
                time.sleep(fill_wait)
                fill_wait = min(fill_wait * 2, 2.0)
            elif gap:
                fill_wait = 0.2
            for push_id in due:
                if not self.client.connected:
                    break
                self.ack_attempts += 1
                try:
                    answer = self.client.call(
                        names.SCRIPT_ACK, {"push_id": push_id}, namespace=names.AGENT, timeout=2
                    )
                except Exception:  # timed out or disconnected: retry
                    answer = None
                with self.lock:
                    if isinstance(answer, dict) and answer.get("ok"):
                        self.acked.add(push_id)
                        self.pending_acks.pop(push_id, None)
                        waits.pop(push_id, None)
                        self.changed.notify_all()
                    else:
                        wait = waits[push_id] = min(waits.get(push_id, 0.1) * 2, 2.0)
                        self.pending_acks[push_id] = time.monotonic() + wait

    def whole(self, expected: list[int]) -> bool:
        """Whether every expected push was shown exactly once and acknowledged."""
        with self.lock:
            return set(expected) <= set(self.shown) and set(expected) <= self.acked


@dataclass
class Cluster:
    """Redis, two web processes, a manager's API on each, and the agents."""

    redis: OwnedRedis
    store: Store
    urls: list[str]
    managers: list[requests.Session]
    script_id: int
    agents: list[HealingAgent] = field(default_factory=list)
    #: The ``serve`` processes, by index into ``urls`` (a restarted one replaces its entry).
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None

    def kill(self, index: int) -> None:
        """Kill web process ``index`` at once (kill -9): no shutdown, its sockets just drop."""
        self.processes[index].kill()
        self.processes[index].wait(10)

    def restart(self, index: int) -> None:
        """Start web process ``index`` again on its port, and wait until it answers."""
        assert self.folder is not None
        port = int(self.urls[index].rsplit(":", 1)[1])
        log = self.folder / f"serve-{index}-restarted.log"
        self.processes[index] = start_console(self.env, log, port)

    def push(self, index: int) -> int | None:
        """Push the script through process ``index % 2``; return the seq, or None if refused."""
        try:
            response = self.managers[index % 2].post(
                f"{self.urls[index % 2]}/api/v1/scripts/{self.script_id}/push",
                json={"audience": "all"},
                timeout=20,
            )
        except requests.RequestException:
            return None
        return response.json()["seq"] if response.status_code == 201 else None

    def stored_after(self, seq: int) -> list[int]:
        """Return the seqs stored after ``seq`` (what every agent must end with)."""
        return [
            int(s) for s in self.store.redis.zrangebyscore(self.store.keys.pushes_index(), f"({seq}", "+inf")
        ]

    def last_seq(self) -> int:
        """Return the newest stored seq."""
        return self.store.pushes.last_seq()


def _session(url: str, token: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Redis, two ``serve`` processes on it and the agents, half on each."""
    with running_cluster(tmp_path_factory.mktemp("faults")) as running:
        yield running


@contextmanager
def running_cluster(folder: Path) -> Iterator[Cluster]:
    """Start Redis, two ``serve`` processes on it and connect the agents, half to each."""
    server = OwnedRedis(folder)
    server.start()
    prefix = f"ccfault-{time.monotonic_ns()}"
    client = redis.Redis.from_url(server.url, decode_responses=True)
    store = Store(client, prefix)
    processes: list[subprocess.Popen[bytes]] = []
    started: dict[int, subprocess.Popen[bytes]] = {}
    agents: list[HealingAgent] = []
    try:
        ports = [free_port(), free_port()]
        env = {
            **os.environ,
            "REDIS_URL": server.url,
            "CRISIS_KEY_PREFIX": prefix,
            "CRISIS_INSTANCE_PATH": str(folder / "instance"),
            "SECRET_KEY": "fault-test-secret",
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "CRISIS_SEED_CATALOGUE": "0",
            "PYTHONUNBUFFERED": "1",
        }
        starters = [
            threading.Thread(
                target=lambda i=i: started.update(
                    {i: start_console(env, folder / f"serve-{i}.log", ports[i])}
                )
            )
            for i in range(2)
        ]
        for starter in starters:
            starter.start()
        accounts = Accounts(store)
        writer = accounts.create_user(unique_name("manager"), Role.MANAGER, PASSWORD, actor="test")
        reviewer = accounts.create_user(unique_name("manager"), Role.MANAGER, PASSWORD, actor="test")
        users = [
            accounts.create_user(unique_name("agent"), Role.AGENT, PASSWORD, actor="test")
            for _ in range(AGENTS)
        ]
        for starter in starters:
            starter.join()
        processes.extend(started[i] for i in sorted(started))  # in the order of ports
        assert len(processes) == 2, "a console did not start (see the logs)"
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        managers = [_session(urls[0], accounts.create_token(writer.username, actor="test"))]
        managers.append(_session(urls[1], accounts.create_token(reviewer.username, actor="test")))
        api = f"{urls[0]}/api/v1"
        script = (
            managers[0]
            .post(
                f"{api}/scripts",
                json={"title": "Shelters", "topic": "Safety", "language": "en", "body": "Open."},
            )
            .json()
        )
        managers[0].post(f"{api}/scripts/{script['id']}/submit").raise_for_status()
        managers[1].post(f"{urls[1]}/api/v1/scripts/{script['id']}/approve").raise_for_status()
        for n, user in enumerate(users):
            agent = HealingAgent(urls[n % 2], accounts.create_token(user.username, actor="test"), user.id, 0)
            agent.connect()
            agents.append(agent)
        yield Cluster(server, store, urls, managers, script["id"], agents, processes, env, folder)
    finally:
        for agent in agents:
            agent.close()
        for process in processes or started.values():
            stop_console(process)
        client.close()
        server.stop()


def _run_fault(cluster: Cluster, fault, restore) -> dict:
    """Push steadily through a fault; wait until every agent is whole; return what happened."""
    before = cluster.last_seq()
    stop = threading.Event()
    attempts = {"pushes": 0, "refused": 0}

    def pusher() -> None:
        n = 0
        while not stop.is_set():
            attempts["pushes"] += 1
            if cluster.push(n) is None:
                attempts["refused"] += 1
            n += 1
            stop.wait(0.25)

    # A push just before the fault: its acknowledgements (0.1–1.5 s later) meet the outage.
    assert cluster.push(0) is not None
    thread = threading.Thread(target=pusher, daemon=True)
    thread.start()
    fault()
    time.sleep(FAULT_SECONDS)  # the fault's length itself, not a wait for a result
    restore()
    # Keep pushing through both processes while their listeners come back (python-socketio's
    # own backoff would leave them deaf for seconds more), until 8 pushes landed after it.
    recovered = cluster.last_seq()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while cluster.last_seq() < recovered + 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    expected = cluster.stored_after(before)
    for agent in cluster.agents:
        with agent.changed:
            agent.changed.wait_for(
                lambda a=agent: a.whole(expected), timeout=max(0.1, deadline - time.monotonic())
            )
    return {"expected": expected, **attempts}


def _assert_nothing_lost(cluster: Cluster, outcome: dict) -> None:
    expected = outcome["expected"]
    assert len(expected) >= 5, outcome
    assert expected == list(range(expected[0], expected[0] + len(expected))), "the stored seqs have a hole"
    for agent in cluster.agents:
        mine = [p for p in agent.shown if p in set(expected)]
        assert sorted(mine) == expected, f"agent {agent.user_id} lacks {sorted(set(expected) - set(mine))}"
        assert len(mine) == len(set(mine)), "a push was shown twice"
        assert set(expected) <= agent.acked, f"agent {agent.user_id}: acks not confirmed"
    agent_ids = {str(a.user_id) for a in cluster.agents}
    for seq in expected:
        _audience, _delivered, acked = cluster.store.pushes.receipts(seq)
        assert acked == agent_ids, f"push {seq}: {len(acked)} of {len(agent_ids)} acknowledgements recorded"
        status = cluster.managers[0].get(f"{cluster.urls[0]}/api/v1/pushes/{seq}", timeout=10).json()
        assert status["acknowledged"] == len(agent_ids), status


def _report(name: str, cluster: Cluster, outcome: dict) -> None:
    fetched = sum(a.fetched for a in cluster.agents)
    duplicates = sum(a.duplicates for a in cluster.agents)
    attempts = sum(a.ack_attempts for a in cluster.agents)
    print(
        f"\n{name}: {len(outcome['expected'])} pushes stored ({outcome['refused']} of {outcome['pushes']} "
        f"push calls refused), {fetched} agent-pushes filled by the page logic, {duplicates} duplicates "
        f"ignored, {attempts} ack attempts"
    )


def test_redis_stopped_and_restarted_loses_no_push_and_no_ack(cluster: Cluster):
    """Redis killed for 3 s and restarted with its data: every agent ends with every push once, acknowledged once."""
    outcome = _run_fault(cluster, cluster.redis.kill, cluster.redis.start)
    _report("restart", cluster, outcome)
    _assert_nothing_lost(cluster, outcome)


def test_redis_paused_loses_no_push_and_no_ack(cluster: Cluster):
    """Redis frozen (SIGSTOP) for 3 s: every agent ends with every push once, acknowledged once."""
    outcome = _run_fault(cluster, cluster.redis.pause, cluster.redis.resume)
    _report("pause", cluster, outcome)
    _assert_nothing_lost(cluster, outcome)


def _unpublished_push(cluster: Cluster) -> int:
    """Store a push without announcing it on the queue (a publish that was lost); return its seq."""
    return Pushes(cluster.store).push(cluster.script_id, "all", actor="test")["seq"]


def _wait_all_have(cluster: Cluster, seqs: list[int]) -> list[HealingAgent]:
    """Wait (bounded) until every agent shows ``seqs``; return those that do not."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    for agent in cluster.agents:
        with agent.changed:
            agent.changed.wait_for(
                lambda a=agent: set(seqs) <= set(a.shown), timeout=max(0.1, deadline - time.monotonic())
            )
    return [a for a in cluster.agents if not set(seqs) <= set(a.shown)]


@pytest.fixture
def servers_alone(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with the agents' own gap filling off: only the web processes can heal."""
    for agent in cluster.agents:
        agent.gap_fill = False
    yield cluster
    for agent in cluster.agents:
        agent.gap_fill = True


def test_servers_heal_a_push_whose_publish_was_lost_when_the_next_one_arrives(servers_alone: Cluster):
    """A stored push that never reached the queue reaches every agent once the next push shows the hole."""
    cluster = servers_alone
    # The cluster lives for the module: count what happens in this test only.
    at_start = {id(a): (a.connects, a.duplicates) for a in cluster.agents}
    lost = _unpublished_push(cluster)
    after = cluster.push(1)
    assert after == lost + 1
    lacking = _wait_all_have(cluster, [lost, after])
    assert not lacking, f"{len(lacking)} agents lack push {lost}"
    assert all(a.shown.count(lost) == 1 for a in cluster.agents)
    # The servers send each push once; only an agent that reconnected meanwhile (its socket
    # timed out on a busy machine) is sent again what came after its cursor, and ignores it.
    stayed = [a for a in cluster.agents if a.connects == at_start[id(a)][0]]
    assert all(a.duplicates == at_start[id(a)][1] for a in stayed)


def test_servers_heal_what_was_published_while_their_listener_was_cut_off(servers_alone: Cluster):
    """A push stored while both processes' queue listeners are cut off reaches every agent when they resubscribe."""
    cluster = servers_alone
    lost = _unpublished_push(cluster)
    killed = cluster.store.redis.client_kill_filter(_type="pubsub")
    assert killed >= 2, "each web process listens on one pub/sub connection"
    lacking = _wait_all_have(cluster, [lost])
    assert not lacking, f"{len(lacking)} agents lack push {lost}"
    assert all(a.shown.count(lost) == 1 for a in cluster.agents)
