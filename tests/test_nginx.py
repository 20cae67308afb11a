"""nginx in front: the shipped config, run by the real nginx, in front of real processes.

An owned redis-server, two ``serve`` web processes, one ``serve --only webhooks`` and nginx
running deploy/nginx/crisis-console.conf exactly as deploy/render.py renders it for an
operator. Everything goes through nginx: a manager's pushes over the API, agents on websocket
and on long-polling (which works only because ip_hash keeps a session on one process), a
signed Twilio call, static files, the cached public page. Then the web process holding the
agents is stopped (SIGTERM): they reconnect through nginx to the other one and, healing gaps
by seq as the agent page does, miss nothing.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from twilio.request_validator import RequestValidator

from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts
from crisis_console.sockets import names
from crisis_console.store import Store
from tests.conftest import TWILIO_TOKEN
from tests.helpers import PASSWORD, unique_name
from tests.servers import OwnedRedis, free_port, start_web, start_webhooks, stop_console
from tests.test_faults_pushes import HealingAgent

ROOT = Path(__file__).resolve().parent.parent
NGINX = Path("/usr/sbin/nginx")
STATIC = ROOT / "crisis_console" / "static"

pytestmark = [
    pytest.mark.served,
    pytest.mark.skipif(not NGINX.is_file(), reason="nginx is not installed (make test installs it)"),
]

WEBSOCKET_AGENTS = 6
LINE = "+16175550311"
CALLER = "+16175550123"
#: Failure guard for waits on explicit signals (a loaded machine may take a while).
DEADLINE = 60.0

#: The main nginx.conf around the shipped file: every temporary path inside the test's
#: folder, and an access log naming the process that answered each request. (Started by root,
#: nginx's workers would otherwise run as nobody, who cannot enter pytest's private folders.)
MAIN_CONF = """\
{user}
worker_processes 1;
events {{ worker_connections 512; }}
http {{
    types {{
        text/html html;
        text/css css;
        application/javascript js;
        image/svg+xml svg;
        image/x-icon ico;
    }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    log_format upstreams '$upstream_addr|$status|$upstream_cache_status|$request_uri';
    access_log {tmp}/access.log upstreams;
    include {site};
}}
"""


class Agent(HealingAgent):
    """A healing agent (see tests/test_faults_pushes.py) on a chosen Socket.IO transport."""

    def __init__(self, url: str, token: str, user_id: int, transport: str):
        super().__init__(url, token, user_id, 0)
        self.transport = transport

    def connect(self) -> None:
        """Connect to /agent on the one transport, sending the cursor on every (re)connection."""
        self.client.connect(
            self.url,
            namespaces=[names.AGENT],
            transports=[self.transport],
            auth=lambda: {"token": self.token, "last_seq": self.cursor},
            wait_timeout=30,
        )
        self.worker.start()

    def _on_connect(self) -> None:
        """Count the connection and wake whoever waits for a reconnection."""
        with self.lock:
            super()._on_connect()
            self.changed.notify_all()


@dataclass
class Stack:
    """nginx in front of two web processes and the webhooks service, on an owned Redis."""

    url: str
    web_ports: list[int]
    webhooks_port: int
    web: list[subprocess.Popen[bytes]]
    store: Store
    writer: requests.Session
    script_id: int
    folder: Path
    agents: list[Agent] = field(default_factory=list)

    def push(self) -> int:
        """Push the script to all agents through nginx; return its seq (retried if refused)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                response = self.writer.post(
                    f"{self.url}/api/v1/scripts/{self.script_id}/push", json={"audience": "all"}, timeout=10
                )
                if response.status_code == 201:
                    return response.json()["seq"]
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "no push went through nginx"
            time.sleep(0.2)

    def stored_after(self, seq: int) -> list[int]:
        """Return the seqs stored after ``seq``."""
        key = self.store.keys.pushes_index()
        return [int(s) for s in self.store.redis.zrangebyscore(key, f"({seq}", "+inf")]

    def addresses(self, path: str) -> list[str]:
        """Return nginx's $upstream_addr of each request for ``path...``, in order ("a, b" if retried)."""
        found = []
        for line in (self.folder / "nginx" / "access.log").read_text().splitlines():
            addresses, _status, _cache, uri = line.split("|", 3)
            if uri.startswith(path) and addresses != "-":
                found.append(addresses)
        return found

    def upstreams(self, path: str) -> list[int]:
        """Return the ports of the services that answered requests for ``path...``, in order."""
        return [int(found.split(",")[-1].strip().rsplit(":", 1)[1]) for found in self.addresses(path)]

    def wait_whole(self, expected: list[int], *, reconnected: bool = False) -> list[Agent]:
        """Wait (bounded) until every agent shows and has acknowledged ``expected``; return the rest."""
        deadline = time.monotonic() + DEADLINE

        def done(agent: Agent) -> bool:
            return agent.whole(expected) and (agent.connects >= 2 or not reconnected)

        for agent in self.agents:
            with agent.changed:
                agent.changed.wait_for(lambda a=agent: done(a), timeout=max(0.1, deadline - time.monotonic()))
        return [agent for agent in self.agents if not done(agent)]


def _session(token: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def _start_nginx(folder: Path, site: Path, url: str) -> subprocess.Popen[bytes]:
    """Run nginx in the foreground as this user, all its files under ``folder``; wait until it answers."""
    user = ""
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    (folder / "nginx.conf").write_text(MAIN_CONF.format(user=user, tmp=folder, site=site))
    log = folder / "error.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                str(NGINX),
                *("-c", str(folder / "nginx.conf"), "-p", str(folder)),
                *("-g", f"daemon off; error_log stderr; pid {folder / 'nginx.pid'};"),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + DEADLINE
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited ({process.returncode}):\n{log.read_text()}")
        try:
            requests.get(f"{url}/static/favicon.svg", timeout=1)
            return process
        except requests.ConnectionError:
            assert time.monotonic() < deadline, f"nginx did not start:\n{log.read_text()}"
            time.sleep(0.05)


@contextmanager
def running_stack(folder: Path) -> Iterator[Stack]:
    """Start Redis, the three services and nginx; create staff, a script, a line and the agents."""
    server = OwnedRedis(folder / "redis")
    server.start()
    prefix = f"ccnginx-{time.monotonic_ns()}"
    client = redis.Redis.from_url(server.url, decode_responses=True)
    store = Store(client, prefix)
    web_ports, hooks_port, edge_port = [free_port(), free_port()], free_port(), free_port()
    url = f"http://127.0.0.1:{edge_port}"
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "CRISIS_KEY_PREFIX": prefix,
        "CRISIS_INSTANCE_PATH": str(folder / "instance"),
        "SECRET_KEY": "nginx-test-secret",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        # Twilio signs the URL it calls: nginx's.
        "PUBLIC_BASE_URL": url,
        "CRISIS_PROXY_HOPS": "1",
        "CRISIS_SEED_CATALOGUE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    started: dict[str, subprocess.Popen[bytes]] = {}
    failed: list[str] = []

    def start(name: str, starter, port: int) -> None:
        try:
            started[name] = starter(env, folder / f"{name}.log", port)
        except RuntimeError as exc:
            failed.append(f"{name}: {exc}")

    starters = [
        threading.Thread(target=start, args=("web0", start_web, web_ports[0])),
        threading.Thread(target=start, args=("web1", start_web, web_ports[1])),
        threading.Thread(target=start, args=("webhooks", start_webhooks, hooks_port)),
    ]
    agents: list[Agent] = []
    edge: subprocess.Popen[bytes] | None = None
    try:
        for starter in starters:
            starter.start()
        (folder / "nginx").mkdir()
        site = folder / "nginx" / "crisis-console.conf"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "deploy" / "render.py"),
                *("--web", f"127.0.0.1:{web_ports[0]}", "--web", f"127.0.0.1:{web_ports[1]}"),
                *("--webhooks", f"127.0.0.1:{hooks_port}", "--listen", f"127.0.0.1:{edge_port}"),
                *("--cache-path", str(folder / "nginx" / "cache"), "-o", str(site)),
            ],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's static folder
            timeout=60,
        )
        edge = _start_nginx(folder / "nginx", site, url)
        accounts = Accounts(store)
        staff = [
            accounts.create_user(unique_name(role), role, PASSWORD, actor="test")
            for role in (Role.MANAGER, Role.MANAGER, Role.ADMIN)
        ]
        writer, reviewer, admin = (_session(accounts.create_token(u.username, actor="test")) for u in staff)
        users = [
            accounts.create_user(unique_name("agent"), Role.AGENT, PASSWORD, actor="test")
            for _ in range(WEBSOCKET_AGENTS + 1)
        ]
        for starter in starters:
            starter.join()
        assert not failed, "\n".join(failed)
        api = f"{url}/api/v1"
        script = writer.post(
            f"{api}/scripts", json={"title": "Shelters", "topic": "Safety", "language": "en", "body": "Open."}
        )
        assert script.status_code == 201, script.text
        script_id = script.json()["id"]
        writer.post(f"{api}/scripts/{script_id}/submit").raise_for_status()
        reviewer.post(f"{api}/scripts/{script_id}/approve").raise_for_status()
        route = {"type": "enqueue", "queue": "311-agents", "hold_music_url": "https://example.org/hold.mp3"}
        line = admin.post(
            f"{api}/lines", json={"number": LINE, "name": "311", "route": route, "languages": ["en", "es"]}
        )
        assert line.status_code == 201, line.text
        for n, user in enumerate(users):
            transport = "polling" if n == WEBSOCKET_AGENTS else "websocket"
            agent = Agent(url, accounts.create_token(user.username, actor="test"), user.id, transport)
            agent.connect()
            agents.append(agent)
        yield Stack(
            url,
            web_ports,
            hooks_port,
            [started["web0"], started["web1"]],
            store,
            writer,
            script_id,
            folder,
            agents,
        )
    finally:
        for agent in agents:
            agent.close()
        if edge is not None:
            edge.terminate()
            edge.wait(10)
        for starter in starters:
            starter.join(60)
        for process in started.values():
            stop_console(process)
        client.close()
        server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole deployment, shared by this module's tests (which run in order)."""
    with running_stack(tmp_path_factory.mktemp("nginx")) as running:
        yield running


def signed_call(stack: Stack, sid: str, *, token: str = TWILIO_TOKEN) -> requests.Response:
    """Post a call to the line through nginx, signed as Twilio signs it (over nginx's URL)."""
    url = f"{stack.url}/twilio/voice"
    params = {"CallSid": sid, "From": CALLER, "To": LINE, "AccountSid": "AC1"}
    signature = RequestValidator(token).compute_signature(url, params)
    return requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)


def test_static_files_are_served_by_nginx_with_cache_headers(stack: Stack):
    """/static/ comes from the install's folder (no app timing header), gzipped, cacheable for ten minutes."""
    for name in ("css/console.css", "js/agent.js", "vendor/socket.io-client/socket.io.min.js"):
        response = requests.get(f"{stack.url}/static/{name}", timeout=10)
        assert response.status_code == 200
        assert response.content == (STATIC / name).read_bytes()
        assert response.headers["Cache-Control"] == "public, max-age=600"
        assert response.headers["Content-Encoding"] == "gzip"  # requests asks for it
        assert "ETag" in response.headers
        assert "Server-Timing" not in response.headers  # every answer of the app carries it
        again = requests.get(
            f"{stack.url}/static/{name}", headers={"If-None-Match": response.headers["ETag"]}, timeout=10
        )
        assert again.status_code == 304
    assert stack.upstreams("/static/") == []


def test_the_public_page_is_answered_from_nginx_cache(stack: Stack):
    """The first reader of each language reaches the app; the next ones get nginx's copy."""
    first = requests.get(f"{stack.url}/public", timeout=10)
    assert first.status_code == 200
    assert first.headers["X-Cache-Status"] in ("MISS", "EXPIRED")
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    surge = [requests.get(f"{stack.url}/public", timeout=10) for _ in range(20)]
    assert {r.headers["X-Cache-Status"] for r in surge} == {"HIT"}
    assert {r.content for r in surge} == {first.content}
    spanish = [
        requests.get(f"{stack.url}/public", headers={"Accept-Language": "es"}, timeout=10) for _ in "ab"
    ]
    assert [r.headers["X-Cache-Status"] for r in spanish] == ["MISS", "HIT"]  # Vary: Accept-Language
    assert spanish[0].content != first.content
    english = requests.get(f"{stack.url}/public", timeout=10)  # both variants are kept
    assert english.headers["X-Cache-Status"] == "HIT" and english.content == first.content
    assert len(stack.upstreams("/public")) == 2  # one request per language reached Python


def test_a_push_through_nginx_reaches_every_agent_and_is_acknowledged(stack: Stack):
    """Agents on websocket and one on long-polling (sticky by ip_hash) get the push and acknowledge it."""
    polling = stack.agents[-1]
    assert polling.client.transport() == "polling" and stack.agents[0].client.transport() == "websocket"
    seq = stack.push()
    assert stack.wait_whole([seq]) == []
    status = stack.writer.get(f"{stack.url}/api/v1/pushes/{seq}", timeout=10).json()
    assert status["acknowledged"] == status["audience_size"] == len(stack.agents), status
    # Every long-poll of the session went to one process: the other would not know its sid.
    assert len(set(stack.upstreams("/socket.io/"))) == 1


def test_a_signed_twilio_call_through_nginx_is_answered_with_twiml(stack: Stack):
    """nginx routes /twilio/ to the webhooks service, which checks the signature over nginx's URL."""
    response = signed_call(stack, "CAnginx1")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response" and [child.tag for child in root] == ["Enqueue"]
    assert signed_call(stack, "CAnginx2", token="another-token").status_code == 403
    # The webhooks service alone answers unknown paths as JSON (the web app has pages).
    missing = requests.get(f"{stack.url}/twilio/nothing-here", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert set(stack.upstreams("/twilio/")) == {stack.webhooks_port}  # none went to a web process


def test_stopping_a_web_process_moves_its_agents_to_the_other_without_losing_a_push(stack: Stack):
    """SIGTERM the process holding the agents, push at once: all reconnect through nginx, none misses one."""
    before = stack.store.pushes.last_seq()
    (holder,) = set(stack.upstreams("/socket.io/"))
    victim = stack.web_ports.index(holder)
    survivor = stack.web_ports[1 - victim]
    started = time.monotonic()
    stack.web[victim].send_signal(signal.SIGTERM)
    # At once, and answered the first time: the stopping process refuses the connection and
    # nginx passes the push to the other one (never a 502 for the manager to retry).
    response = stack.writer.post(
        f"{stack.url}/api/v1/scripts/{stack.script_id}/push", json={"audience": "all"}, timeout=10
    )
    assert response.status_code == 201, response.text
    right_after = response.json()["seq"]
    assert signed_call(stack, "CAnginx3").status_code == 200  # calls are answered meanwhile
    assert stack.web[victim].wait(DEADLINE) == 0
    assert stack.wait_whole(stack.stored_after(before), reconnected=True) == []
    moved = time.monotonic() - started
    later = stack.push()  # through the survivor, live to every agent
    expected = stack.stored_after(before)
    assert right_after in expected and later in expected
    assert stack.wait_whole(expected) == []
    agent_ids = {str(agent.user_id) for agent in stack.agents}
    for seq in expected:
        _audience, _delivered, acked = stack.store.pushes.receipts(seq)
        assert acked == agent_ids, f"push {seq}: {len(acked)} of {len(agent_ids)} acknowledgements"
    for agent in stack.agents:
        assert len(agent.shown) == len(set(agent.shown)), "a push was shown twice"
    assert stack.upstreams("/socket.io/")[-1] == survivor
    fetched = sum(agent.fetched for agent in stack.agents)
    pushes = stack.addresses(f"/api/v1/scripts/{stack.script_id}/push")
    print(
        f"\nnginx failover: {sum(a.connects >= 2 for a in stack.agents)} of {len(stack.agents)} agents "
        f"reconnected to :{survivor} and were whole {moved:.1f} s after SIGTERM; {len(expected)} pushes "
        f"(the one at SIGTERM went to {pushes[-2]}), {fetched} agent-pushes healed by a gap fetch, "
        f"{sum(a.duplicates for a in stack.agents)} duplicates ignored"
    )
