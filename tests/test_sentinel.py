"""REDIS_URL=redis+sentinel://: a real ``serve`` process keeps working while the master fails over.

The test owns every process: a master and a replica (append-only, fsync always), three
Sentinels (quorum 2) and one ``serve`` on ``redis+sentinel://s1,s2,s3/mymaster/0``. While
managers push scripts to python-socketio agents (who heal gaps by seq, as the agent page
does), Twilio places signed calls and an integration posts complaints (retrying on 503),
the master role moves twice:

1. **a controlled switch-over** (:meth:`OwnedSentinels.switch_over`: writes paused, the
   replica caught up, SENTINEL FAILOVER, the old master made a replica before writes go on):
   nothing acknowledged is lost: every push reaches every agent, every accepted complaint is
   stored;
2. **a crash**: the new master is killed (SIGKILL) and the Sentinels promote the other server.
   Redis replicates asynchronously, so what the dead master acknowledged in its last moment
   may not have reached the replica: the test allows that for writes acknowledged in the
   ``CRASH_WINDOW`` before the kill (and reports how many), and asserts the console recovers
   by itself and loses nothing after.

Throughout, every call is answered with valid TwiML within ``CALL_DEADLINE``. Waits are on
explicit signals (the Sentinels naming the master, the replica's offset, counters of what
was acknowledged), never sleeps.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests
from twilio.request_validator import RequestValidator

from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts
from crisis_console.services.categories import Categories
from crisis_console.services.ivr_state import LastKnownState
from crisis_console.store import Store
from tests.conftest import TWILIO_TOKEN
from tests.helpers import PASSWORD, csrf_from, live_announcement, unique_name
from tests.servers import OwnedSentinels, free_port, start_console, stop_console
from tests.test_faults_pushes import HealingAgent

pytestmark = [
    pytest.mark.served,
    pytest.mark.skipif(
        shutil.which("redis-sentinel") is None or shutil.which("redis-server") is None,
        reason="needs redis-server and redis-sentinel (make test installs them)",
    ),
]

AGENTS = 4
LINE = "+16175550311"
MESSAGES = {"en": "Shelters are open at every school.", "es": "Los refugios están abiertos."}
#: Twilio's patience is what the phone line is built for: every answer within a second.
CALL_DEADLINE = 1.0
#: Writes acknowledged this long before the master is killed may die with it (async replication).
CRASH_WINDOW = 0.25
#: Failure guard for waits on explicit signals (each takes a few seconds when it works).
GUARD = 30.0


def wait_for(condition: Callable[[], bool], what: str, seconds: float = GUARD) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds`` (a guard)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Traffic:
    """Pushes, calls and complaints sent to the console in background threads, and what came back."""

    base: str
    manager: requests.Session
    agent_http: requests.Session
    script_id: int
    category: str
    stop: threading.Event = field(default_factory=threading.Event)
    #: (seq, when acknowledged) of each push the API accepted (201); a push's id is its seq.
    pushes: list[tuple[int, float]] = field(default_factory=list)
    pushes_refused: int = 0
    #: (text, when accepted) of each complaint the API accepted (201), after any retries.
    complaints: list[tuple[str, float]] = field(default_factory=list)
    complaint_retries: int = 0
    #: Seconds each call's slower answer (the call, or its status callback) took.
    call_seconds: list[float] = field(default_factory=list)
    bad_answers: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start the pusher, the caller and the integration."""
        for target in (self._push, self._call, self._complain):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        """Stop sending and wait for the threads."""
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _push(self) -> None:
        while not self.stop.wait(0.3):
            try:
                answer = self.manager.post(
                    f"{self.base}/api/v1/scripts/{self.script_id}/push", json={"audience": "all"}, timeout=10
                )
            except requests.RequestException:
                self.pushes_refused += 1
                continue
            if answer.status_code == 201:
                self.pushes.append((answer.json()["seq"], time.monotonic()))
            else:
                self.pushes_refused += 1

    def _call(self) -> None:
        number = 0
        while not self.stop.wait(0.1):
            number += 1
            params = {"CallSid": f"CA-sentinel-{number}", "From": "+16175550123", "To": LINE}
            slowest = 0.0
            for path, extra in (("/twilio/voice", {}), ("/twilio/voice/status", {"CallStatus": "completed"})):
                url = f"{self.base}{path}"
                data = {**params, **extra}
                signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, data)
                started = time.monotonic()
                try:
                    answer = requests.post(
                        url, data=data, headers={"X-Twilio-Signature": signature}, timeout=5
                    )
                    root = ET.fromstring(answer.content)
                    if answer.status_code != 200 or root.tag != "Response":
                        self.bad_answers.append(f"{path}: {answer.status_code} {answer.text[:200]}")
                    elif path == "/twilio/voice" and MESSAGES["en"] not in answer.text:
                        self.bad_answers.append(f"{path}: no announcement in {answer.text[:200]}")
                except (requests.RequestException, ET.ParseError) as exc:
                    self.bad_answers.append(f"{path}: {exc}")
                slowest = max(slowest, time.monotonic() - started)
            self.call_seconds.append(slowest)

    def _complain(self) -> None:
        number = 0
        while not self.stop.wait(0.2):
            number += 1
            text = f"sentinel complaint {number}"
            wait = 0.1
            while True:  # an integration retries a 503 (or a dropped connection) until accepted
                try:
                    answer = self.agent_http.post(
                        f"{self.base}/api/v1/complaints",
                        json={"category": self.category, "text": text},
                        timeout=10,
                    )
                    if answer.status_code == 201:
                        self.complaints.append((text, time.monotonic()))
                        break
                    assert answer.status_code == 503, answer.text
                except requests.RequestException:
                    pass
                self.complaint_retries += 1
                time.sleep(wait)
                wait = min(wait * 2, 1.0)

    def acknowledged(self) -> tuple[int, int]:
        """Return how many pushes and complaints were acknowledged so far."""
        return len(self.pushes), len(self.complaints)

    def more(self, pushes: int = 3, complaints: int = 3) -> None:
        """Wait until this many more pushes and complaints are acknowledged (and one more call)."""
        base_pushes, base_complaints = self.acknowledged()
        calls = len(self.call_seconds)
        wait_for(
            lambda: (
                len(self.pushes) >= base_pushes + pushes
                and len(self.complaints) >= base_complaints + complaints
                and len(self.call_seconds) > calls
            ),
            f"{pushes} more pushes and {complaints} more complaints to be acknowledged",
        )


def test_the_console_keeps_working_through_a_switch_over_and_a_crash_of_the_master(tmp_path):
    """Pushes, calls and complaints go on through a controlled switch-over (nothing lost) and a
    SIGKILL of the master (recovered by itself; only the crash's last instant at risk)."""
    started_at = time.monotonic()
    redis_set = OwnedSentinels(tmp_path / "redis")
    console = None
    agents: list[HealingAgent] = []
    traffic: Traffic | None = None
    clients: list = []
    try:
        redis_set.start()
        first_master, second_master = redis_set.server_ports
        prefix = f"ccsentinel-{time.monotonic_ns()}"
        instance = tmp_path / "instance"
        setup = Store(redis_set.client(first_master), prefix)
        clients.append(setup.redis)
        live_announcement(setup, LINE, MESSAGES, {"type": "dial", "number": "+16175550100"})
        LastKnownState(instance / "ivr-state.json").save(setup)  # as the console does on each change
        category = Categories(setup).create({"name": "Flooding"}, actor="test").code
        accounts = Accounts(setup)
        writer = accounts.create_user(unique_name("manager"), Role.MANAGER, PASSWORD, actor="test")
        reviewer = accounts.create_user(unique_name("manager"), Role.MANAGER, PASSWORD, actor="test")
        users = [
            accounts.create_user(unique_name("agent"), Role.AGENT, PASSWORD, actor="test")
            for _ in range(AGENTS)
        ]
        tokens = [accounts.create_token(user.username, actor="test") for user in users]
        manager_token = accounts.create_token(writer.username, actor="test")
        reviewer_token = accounts.create_token(reviewer.username, actor="test")

        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_set.url,
            "CRISIS_KEY_PREFIX": prefix,
            "CRISIS_INSTANCE_PATH": str(instance),
            "SECRET_KEY": "sentinel-test-secret",
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "CRISIS_SEED_CATALOGUE": "0",
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / "serve.log"
        console = start_console(env, log, port)
        base = f"http://127.0.0.1:{port}"
        assert "redis+sentinel://127.0.0.1:" in log.read_text()

        # The sign-in limiter keeps its counters in the master the Sentinels name.
        browser = requests.Session()
        form = {"username": "nobody", "password": "wrong"}
        form["csrf_token"] = csrf_from(browser.get(f"{base}/login", timeout=10).text)
        assert browser.post(f"{base}/login", data=form, timeout=10).status_code in (200, 401)
        assert list(setup.redis.scan_iter(match=f"{setup.keys.rate_limits_prefix()}*")), "no limiter counter"

        manager = requests.Session()
        manager.headers["Authorization"] = f"Bearer {manager_token}"
        reviewing = requests.Session()
        reviewing.headers["Authorization"] = f"Bearer {reviewer_token}"
        script = manager.post(
            f"{base}/api/v1/scripts",
            json={"title": "Shelters", "topic": "Safety", "language": "en", "body": "Open."},
            timeout=10,
        ).json()
        manager.post(f"{base}/api/v1/scripts/{script['id']}/submit", timeout=10).raise_for_status()
        reviewing.post(f"{base}/api/v1/scripts/{script['id']}/approve", timeout=10).raise_for_status()
        for user, token in zip(users, tokens, strict=True):
            agent = HealingAgent(base, token, user.id, 0)
            agent.connect()
            agents.append(agent)
        integration = requests.Session()
        integration.headers["Authorization"] = f"Bearer {tokens[0]}"

        traffic = Traffic(base, manager, integration, script["id"], category)
        traffic.start()
        traffic.more()

        # 1. A controlled switch-over in the middle of it all.
        switched_at = time.monotonic()
        assert redis_set.switch_over() == second_master
        assert redis_set.role(first_master) == "slave"
        switch_seconds = time.monotonic() - switched_at
        traffic.more()
        check = Store(redis_set.client(second_master), prefix)
        clients.append(check.redis)
        before_crash = list(traffic.pushes)
        lost = _lost_pushes(before_crash, _stored_pushes(check))
        assert not lost, f"pushes acknowledged but lost by the switch-over: {lost}"
        texts = _stored_texts(check)
        missing = [text for text, _ in traffic.complaints if text not in texts]
        assert not missing, f"complaints accepted but lost by the switch-over: {missing}"
        redis_set.wait(redis_set.in_sync, "the old master to replicate from the new one")

        # 2. The new master crashes; the Sentinels promote the old one again.
        killed_at = time.monotonic()
        redis_set.kill(second_master)
        redis_set.wait(
            lambda: redis_set.all_report_master(first_master), "every Sentinel to name the surviving server"
        )
        promoted_seconds = time.monotonic() - killed_at
        traffic.more(pushes=5, complaints=5)
        traffic.finish()

        check = Store(redis_set.client(first_master), prefix)
        clients.append(check.redis)
        stored = _stored_pushes(check)
        at_risk = killed_at - CRASH_WINDOW
        lost_pushes = _lost_pushes(traffic.pushes, stored)
        assert all(when >= at_risk for _seq, when in lost_pushes), (
            f"pushes lost that were acknowledged well before the crash: {lost_pushes}"
        )
        texts = _stored_texts(check)
        lost_complaints = [text for text, when in traffic.complaints if text not in texts]
        assert all(when >= at_risk for text, when in traffic.complaints if text in lost_complaints), (
            f"complaints lost that were accepted well before the crash: {lost_complaints}"
        )

        # Every agent ends with every stored push, shown once and acknowledged.
        expected_ids = sorted(stored)
        for agent in agents:
            with agent.changed:
                agent.changed.wait_for(lambda a=agent: a.whole(expected_ids), timeout=GUARD)
            mine = [push_id for push_id in agent.shown if push_id in set(expected_ids)]
            assert sorted(mine) == sorted(expected_ids), f"agent {agent.user_id} lacks pushes"
            assert len(mine) == len(set(mine)), "a push was shown twice"

        assert not traffic.bad_answers, traffic.bad_answers[:5]
        slowest = max(traffic.call_seconds)
        assert slowest < CALL_DEADLINE, f"a call waited {slowest:.2f} s"
        print(
            f"\nsentinel: switch-over {switch_seconds:.1f} s, crash to promotion {promoted_seconds:.1f} s; "
            f"{len(traffic.call_seconds)} calls answered (slowest {slowest * 1000:.0f} ms), "
            f"{len(traffic.pushes)} pushes acknowledged ({traffic.pushes_refused} refused, "
            f"{len(lost_pushes)} lost in the crash), {sum(a.fetched for a in agents)} agent-pushes "
            f"healed by seq; {len(traffic.complaints)} complaints accepted ({traffic.complaint_retries} "
            f"retries, {len(lost_complaints)} lost in the crash); {time.monotonic() - started_at:.0f} s in all"
        )
    finally:
        if traffic is not None:
            traffic.finish()
        for agent in agents:
            agent.close()
        if console is not None:
            stop_console(console)
        for client in clients:
            client.close()
        redis_set.stop()


def _stored_pushes(store: Store) -> set[int]:
    """Return the seq of every push stored."""
    return {int(seq) for seq in store.redis.zrange(store.keys.pushes_index(), 0, -1)}


def _lost_pushes(acknowledged: list[tuple[int, float]], stored: set[int]) -> list[tuple[int, float]]:
    """Return the acknowledged pushes that are gone: not stored, or whose seq a later push took
    (the master died before its replica had it, and the new master counted from there)."""
    lost = [(seq, when) for seq, when in acknowledged if seq not in stored]
    last_of: dict[int, float] = {}
    for seq, when in acknowledged:
        if seq in last_of:
            lost.append((seq, last_of[seq]))
        last_of[seq] = when
    return lost


def _stored_texts(store: Store) -> set[str]:
    """Return the text of every complaint stored."""
    return {complaint["text"] for complaint in store.complaints.recent(10_000)}
