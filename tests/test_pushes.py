"""Pushes to agents over real Socket.IO connections to the served console."""

from __future__ import annotations

import threading
import time

import jsonschema
import pytest
import requests
import socketio

from crisis_console.roles import Role
from crisis_console.sockets import names
from tests.conftest import console_process

pytestmark = pytest.mark.served


class Api:
    """HTTP calls to the served console with a user's bearer token."""

    def __init__(self, served_app, user):
        self.base = f"{served_app.url}/api/v1"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {served_app.token_for(user)}"

    def post(self, path: str, body: dict | None = None) -> dict:
        """POST JSON and return the JSON answer (asserting success)."""
        response = self.http.post(self.base + path, json=body or {})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def get(self, path: str) -> requests.Response:
        """GET."""
        return self.http.get(self.base + path)


class Agent:
    """A real python-socketio client on /agent that records what it receives."""

    def __init__(self, served_app, team: str = "", user=None):
        self.user = user or served_app.make_user(Role.AGENT, team=team)
        self.token = served_app.token_for(self.user)
        self.url = served_app.url
        self.pushes: list[dict] = []
        self.retired: list[int] = []
        self.arrived = threading.Condition()
        self.client = self._client()

    def _client(self) -> socketio.Client:
        client = socketio.Client(reconnection=False)

        @client.on(names.SCRIPT_PUSHED, namespace=names.AGENT)
        def pushed(message):
            with self.arrived:
                self.pushes.append(message)
                self.arrived.notify_all()

        @client.on(names.SCRIPT_RETIRED, namespace=names.AGENT)
        def retired(message):
            with self.arrived:
                self.retired.append(message["script_id"])
                self.arrived.notify_all()

        return client

    def connect(self, last_seq: int | None = None) -> None:
        """Connect (again), optionally announcing the last push seen."""
        auth = {"token": self.token}
        if last_seq is not None:
            auth["last_seq"] = last_seq
        self.client = self._client()
        self.client.connect(
            self.url, namespaces=[names.AGENT], transports=["websocket"], auth=auth, wait_timeout=30
        )

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        """Wait until ``predicate()`` holds (generous: a busy machine is slow, not wrong)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.arrived.wait(remaining)
        return True

    def receive(self, push_id: int) -> None:
        """Tell the server this page shows the push, as the page does (no answer asked)."""
        self.client.emit(names.SCRIPT_RECEIVED, {"push_id": push_id}, namespace=names.AGENT)

    def ack(self, push_id: int) -> dict:
        """Press "Got it" and return the server's answer."""
        return self.client.call(names.SCRIPT_ACK, {"push_id": push_id}, namespace=names.AGENT, timeout=5)


@pytest.fixture
def managers(served_app):
    """Two managers: one writes, the other approves."""
    return Api(served_app, served_app.make_user(Role.MANAGER)), Api(
        served_app, served_app.make_user(Role.MANAGER)
    )


def marker_push(managers, *agents: Agent) -> dict:
    """Push one more script to all and wait until every agent holds it.

    One socket receives in order, so anything sent to an agent before the marker has arrived
    by then: a test asserts that something did *not* arrive after this, not after a sleep."""
    marker = managers[0].post(f"/scripts/{approved_script(managers)['id']}/push", {"audience": "all"})
    for agent in agents:
        assert agent.wait_for(lambda a=agent: any(p["push_id"] == marker["id"] for p in a.pushes))
    return marker


def approved_script(managers, body: str = "Shelters are **open**.") -> dict:
    """Write, submit and approve a script; return it."""
    writer, reviewer = managers
    script = writer.post(
        "/scripts",
        {"title": f"Shelters {time.monotonic_ns()}", "topic": "Safety", "language": "en", "body": body},
    )
    writer.post(f"/scripts/{script['id']}/submit")
    return reviewer.post(f"/scripts/{script['id']}/approve")


def test_two_agents_receive_a_push_and_an_ack_is_counted(served_app, managers):
    """Both connected agents get the push; one acknowledges; the manager sees 1 acknowledged."""
    first, second = Agent(served_app), Agent(served_app)
    first.connect()
    second.connect()
    script = approved_script(managers)
    push = managers[0].post(f"/scripts/{script['id']}/push", {"audience": "all"})
    assert push["audience_size"] >= 2 and push["seq"] == push["id"]
    for agent in (first, second):
        assert agent.wait_for(lambda a=agent: any(p["push_id"] == push["id"] for p in a.pushes)), (
            "push not received"
        )
    message = next(p for p in first.pushes if p["push_id"] == push["id"])
    assert (
        message["script"]["title"] == script["title"] and "<strong>open</strong>" in message["script"]["html"]
    )
    first.receive(push["id"])
    second.receive(push["id"])
    second.receive(push["id"])  # a page that sends it twice is counted once
    assert first.ack(push["id"]) == {"ok": True}
    status = managers[0].get(f"/pushes/{push['id']}").json()
    assert status["acknowledged"] == 1
    # Receipts are written in batches (every 0.25 s at most): wait for the second's.
    deadline = time.monotonic() + 30
    while status["delivered"] < 2:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
        status = managers[0].get(f"/pushes/{push['id']}").json()
    assert status["delivered"] == 2 and status["audience_size"] >= 2
    assert second.user.display_name in status["pending"]
    assert first.user.display_name not in status["pending"]
    first.client.disconnect()
    second.client.disconnect()


def test_manager_sees_progress_live(served_app, managers):
    """/manager receives push.progress as agents acknowledge."""
    manager_user = served_app.make_user(Role.MANAGER)
    progress: list[dict] = []
    got = threading.Event()
    watcher = socketio.Client(reconnection=False)
    mine: dict = {}

    @watcher.on(names.PUSH_PROGRESS, namespace=names.MANAGER)
    def on_progress(data):
        progress.append(data)
        # Progress of an earlier test's push may still arrive: wait for this push's own.
        if data.get("acknowledged") and data.get("push_id") == mine.get("id"):
            got.set()

    watcher.connect(
        served_app.url,
        namespaces=[names.MANAGER],
        transports=["websocket"],
        auth={"token": served_app.token_for(manager_user)},
    )
    agent = Agent(served_app)
    agent.connect()
    push = managers[0].post(f"/scripts/{approved_script(managers)['id']}/push", {})
    mine.update(push)
    assert agent.wait_for(lambda: agent.pushes)
    agent.ack(push["id"])
    assert got.wait(5), progress
    assert any(p["push_id"] == push["id"] and p["acknowledged"] >= 1 for p in progress)
    watcher.disconnect()
    agent.client.disconnect()


def test_reconnect_replays_exactly_the_missed_pushes_in_order(served_app, managers):
    """An agent away for three pushes gets those three, in order, and nothing it already had."""
    agent = Agent(served_app)
    agent.connect()
    first = managers[0].post(f"/scripts/{approved_script(managers)['id']}/push", {})
    assert agent.wait_for(lambda: any(p["push_id"] == first["id"] for p in agent.pushes))
    agent.client.disconnect()
    missed = [managers[0].post(f"/scripts/{approved_script(managers)['id']}/push", {}) for _ in range(3)]
    agent.pushes.clear()
    agent.connect(last_seq=first["seq"])
    expected = [p["seq"] for p in missed]
    assert agent.wait_for(lambda: len(agent.pushes) >= 3)
    marker = marker_push(managers, agent)
    mine = [p["seq"] for p in agent.pushes if p["push_id"] != marker["id"]]
    assert mine == expected
    assert mine == expected
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {agent.token}"
    replay = http.get(f"{served_app.url}/api/v1/pushes?after_seq={first['seq']}").json()["pushes"]
    assert [p["seq"] for p in replay] == [*expected, marker["seq"]]
    agent.client.disconnect()


def test_team_push_reaches_only_that_team(served_app, managers):
    """A push to team North does not reach team South."""
    north, south = Agent(served_app, team="North"), Agent(served_app, team="South")
    north.connect()
    south.connect()
    push = managers[0].post(f"/scripts/{approved_script(managers)['id']}/push", {"audience": ["North"]})
    assert north.wait_for(lambda: any(p["push_id"] == push["id"] for p in north.pushes))
    marker_push(managers, south)
    assert not any(p["push_id"] == push["id"] for p in south.pushes)
    north.client.disconnect()
    south.client.disconnect()


def test_unapproved_script_cannot_be_pushed(served_app, managers):
    """Pushing a draft is a 409 naming the state."""
    draft = managers[0].post("/scripts", {"title": "Draft", "topic": "Safety", "language": "en", "body": "x"})
    response = managers[0].http.post(f"{managers[0].base}/scripts/{draft['id']}/push", json={})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_approved"


def test_retiring_removes_the_script_everywhere(served_app, managers):
    """Retiring sends script.retired to agents, and replays skip the retired script."""
    agent = Agent(served_app)
    agent.connect()
    script = approved_script(managers)
    push = managers[0].post(f"/scripts/{script['id']}/push", {})
    assert agent.wait_for(lambda: agent.pushes)
    managers[0].post(f"/scripts/{script['id']}/retire")
    assert agent.wait_for(lambda: script["id"] in agent.retired)
    agent.client.disconnect()
    agent.pushes.clear()
    agent.connect(last_seq=push["seq"] - 1)
    marker_push(managers, agent)
    assert not any(p["push_id"] == push["id"] for p in agent.pushes)
    agent.client.disconnect()


def test_script_in_body_arrives_inert(served_app, managers):
    """A <script> in a script's body reaches agents as text, never as a tag."""
    agent = Agent(served_app)
    agent.connect()
    script = approved_script(
        managers, body="Stay safe <script>alert('x')</script> [call](javascript:alert(1))"
    )
    managers[0].post(f"/scripts/{script['id']}/push", {})
    assert agent.wait_for(lambda: agent.pushes)
    html = agent.pushes[-1]["script"]["html"]
    assert "<script" not in html and 'href="javascript' not in html
    agent.client.disconnect()


def test_stakeholders_and_anonymous_cannot_join_agent(served_app):
    """/agent refuses stakeholders and clients without credentials."""
    stakeholder = served_app.make_user(Role.STAKEHOLDER)
    for auth in ({"token": served_app.token_for(stakeholder)}, None):
        client = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(
                served_app.url, namespaces=[names.AGENT], transports=["websocket"], auth=auth, wait_timeout=30
            )


def test_an_ack_sent_again_counts_once_and_the_catch_up_answer_carries_last_seq(served_app, managers):
    """Retried acknowledgements (socket and HTTP) count once; GET /pushes?after_seq= says the newest seq."""
    agent = Agent(served_app)
    agent.connect()
    push = managers[0].post(f"/scripts/{approved_script(managers)['id']}/push", {})
    assert agent.wait_for(lambda: agent.pushes)
    assert agent.ack(push["id"]) == {"ok": True}
    assert agent.ack(push["id"]) == {"ok": True}
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {agent.token}"
    again = http.post(f"{served_app.url}/api/v1/pushes/{push['id']}/ack")
    assert again.status_code == 200 and again.json()["acknowledged"] == 1, again.text
    status = managers[0].get(f"/pushes/{push['id']}").json()
    assert status["acknowledged"] == 1 and agent.user.display_name not in status["pending"]
    caught_up = http.get(f"{served_app.url}/api/v1/pushes", params={"after_seq": push["seq"] - 1}).json()
    assert [m["push_id"] for m in caught_up["pushes"]] == [push["id"]]
    assert caught_up["last_seq"] >= push["seq"]
    nothing = http.get(f"{served_app.url}/api/v1/pushes", params={"after_seq": caught_up["last_seq"]}).json()
    assert nothing == {"pushes": [], "last_seq": caught_up["last_seq"]}
    documented = requests.get(f"{served_app.url}/api/v1/openapi.json").json()["paths"]["/pushes"]["get"]
    schema = documented["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(caught_up, schema)
    jsonschema.validate(managers[0].get("/pushes").json(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"pushes": [{"seq": 1}], "last_seq": 1}, schema)
    agent.client.disconnect()


def test_a_push_reports_how_soon_it_reached_and_was_acknowledged_by_its_connected_agents(
    served_app, managers
):
    """Three agents of a team, two connected: the push counts 2 connected, and once both pages
    said so, 50/90/100 % received (and then acknowledged) times, in that order."""
    team = f"Prop-{time.monotonic_ns()}"
    online = [Agent(served_app, team=team), Agent(served_app, team=team)]
    Agent(served_app, team=team)  # not connected: not part of the figures
    for agent in online:
        agent.connect()
    script = approved_script(managers)
    push = managers[0].post(f"/scripts/{script['id']}/push", {"audience": [team]})
    assert push["audience_size"] == 3
    for agent in online:
        assert agent.wait_for(lambda a=agent: any(p["push_id"] == push["id"] for p in a.pushes))
        agent.receive(push["id"])
        assert agent.ack(push["id"]) == {"ok": True}

    def figures() -> dict:
        return managers[0].get(f"/pushes/{push['id']}").json()["propagation"]

    deadline = time.monotonic() + 30
    while (shown := figures())["received_ms"]["100"] is None or shown["acknowledged_ms"]["100"] is None:
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)
    assert shown["connected"] == 2
    received, acknowledged = shown["received_ms"], shown["acknowledged_ms"]
    assert 0 <= received["50"] <= received["90"] <= received["100"]
    assert received["100"] <= acknowledged["100"]
    for agent in online:
        agent.client.disconnect()


def test_the_console_on_simple_websocket_delivers_and_counts_a_push(redis_url, run_prefix, tmp_path):
    """Without gevent-websocket, python-engineio serves websockets with simple-websocket (the
    library bench/push.py measures against it): a websocket-only agent still gets the push, and
    its receipt and acknowledgement are counted."""
    prefix = f"{run_prefix}:simple-websocket"
    with console_process(
        redis_url, prefix, tmp_path, module="bench.simple_websocket", CRISIS_SEED_CATALOGUE="0"
    ) as served:
        writers = Api(served, served.make_user(Role.MANAGER)), Api(served, served.make_user(Role.MANAGER))
        agent = Agent(served)
        agent.connect()
        assert agent.client.transport() == "websocket"
        push = writers[0].post(f"/scripts/{approved_script(writers)['id']}/push", {"audience": "all"})
        assert agent.wait_for(lambda: any(p["push_id"] == push["id"] for p in agent.pushes))
        agent.receive(push["id"])
        assert agent.ack(push["id"]) == {"ok": True}
        deadline = time.monotonic() + 30
        while (status := writers[0].get(f"/pushes/{push['id']}").json())["delivered"] < 1:
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert status["acknowledged"] == 1
        agent.client.disconnect()
