"""Soak: the whole console under steady load for minutes, through a Redis restart and a crash.

A redis-server this benchmark owns (append-only, fsync always, in a temporary folder), two
``serve`` processes on it, and for ``--minutes`` (default 10):

- ``--agents`` (500) python-socketio agents, half homed on each process, in two crowd
  processes of their own. Each heals by sequence as the agent page does (static/js/agent.js):
  it tracks a cursor, fetches ``GET /api/v1/pushes?after_seq=N`` on a gap and every 30 s,
  sends ``last_seq`` on every (re)connection, ignores a push already shown (by push id),
  reports receipt after 0.2–1.2 s, acknowledges each push after a short pause and retries
  the acknowledgement with the page's backoff (1 s doubling to 30 s) until the server
  confirms it (over the socket, or over HTTP while it has none). When its process dies it
  reconnects to the other process first, then alternates;
- ``--calls`` (50) signed ``POST /twilio/voice`` per second to a line with a live announcement,
  round-robin over both processes, open loop (a call does not wait for the one before);
- ``--complaints`` (20) ``POST /api/v1/complaints`` per second with an agent's token;
- a push to all agents every ``--push-every`` (10) seconds, through each process in turn;
- at 40 % of the run Redis is stopped for ``--redis-down`` (5) seconds and started again
  with its data; at 60 % one ``serve`` process is killed with SIGKILL and started again.

The load generator plays the load balancer: a request refused at the TCP level (a process
that is down) is sent again to the other process at once, and counted as "rerouted"; its
latency includes the refused attempt. Then it reports errors by kind, pushes lost (an
agent never shown a stored push), acknowledgements lost (confirmed to an agent but not in
the push's status), pushes delivered twice, p50/p99/max of the phone webhook overall and
during each fault, complaints accepted vs stored, and each process's RSS, and appends the
table to BENCHMARKS.md. Rates the machine could not sustain are reported as achieved.

    .venv/bin/python -m bench.soak [--minutes 10] [--agents 500] [--calls 50] [--complaints 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import redis
from twilio.request_validator import RequestValidator

from bench.common import ROOT, percentile, record, rss_kib
from bench.push import make_agents, manager_api
from crisis_console.services.accounts import Accounts
from crisis_console.services.categories import Categories
from crisis_console.services.pushes import Pushes
from crisis_console.sockets import names
from crisis_console.store import Store
from tests.helpers import live_announcement
from tests.servers import OwnedRedis, free_port, start_console, stop_console

TOKEN = "bench-twilio-token"
NUMBER = "+16175550311"
TWILIO_GIVES_UP = 15.0
#: The agent page's timings (static/js/agent.js).
CHECK_EVERY = 30.0
RETRY_FIRST, RETRY_MAX = 1.0, 30.0
ACK_TIMEOUT = 5.0
RECEIPT_DELAY = (0.2, 1.2)
#: How long a person takes to read a pushed script and press "Got it".
READ_PAUSE = (1.0, 5.0)
#: After the load stops: long enough for every agent's 30 s check to run once more.
SETTLE_SECONDS = CHECK_EVERY + 5.0
#: socket.io-client's reconnection delays, as the page uses them (reconnectionDelay,
#: reconnectionDelayMax): seconds before the first attempt after a drop, and the cap.
RECONNECT_FIRST, RECONNECT_MAX = 1.0, 5.0


# --- the crowd: agents in a process of their own --------------------------------------------


class Agent:
    """One agent page, as agent.js behaves (see the module docstring)."""

    def __init__(self, crowd: Crowd, urls: list[str], home: int, token: str, user_id: int):
        self.crowd = crowd
        self.urls = urls
        self.home = home
        self.token = token
        self.user_id = user_id
        self.cursor = 0
        self.shown: list[int] = []
        self.seen: set[int] = set()
        self.duplicates = 0
        self.fetched = 0
        self.acked: set[int] = set()
        self.pending: dict[int, float] = {}  # push id -> current backoff
        self.connections = 0
        self.client = None
        self.url = urls[home]
        self.filling: asyncio.Task | None = None
        self.ready = asyncio.Event()

    def error(self, kind: str) -> None:
        self.crowd.errors[f"agent: {kind}"] += 1

    async def life(self) -> None:
        """Stay connected: on a lost connection try the other process first, then alternate,
        waiting before each attempt as the page's socket.io client does (1 s doubling to 5 s,
        each ±50 % at random), so a crash is not met by every agent at the same instant."""
        import socketio

        attempt = 0
        wait = 0.0
        while not self.crowd.stopping:
            if wait:
                await asyncio.sleep(wait * random.uniform(0.5, 1.5))
            url = self.urls[(self.home + attempt) % len(self.urls)]
            client = socketio.AsyncClient(reconnection=False)
            gone = asyncio.Event()
            client.on(names.SCRIPT_PUSHED, self.on_pushed, namespace=names.AGENT)
            client.on("disconnect", lambda *_, gone=gone: gone.set(), namespace=names.AGENT)
            try:
                await client.connect(
                    url,
                    namespaces=[names.AGENT],
                    transports=["websocket"],
                    auth={"token": self.token, "last_seq": self.cursor},
                    wait_timeout=10,
                )
            except Exception as exc:  # refused, timed out, namespace refused: try again
                self.error(f"connect failed ({type(exc).__name__})")
                attempt += 1
                wait = min(max(wait * 2, RECONNECT_FIRST), RECONNECT_MAX)
                continue
            self.client, self.url = client, url
            self.connections += 1
            self.ready.set()
            await gone.wait()
            self.client = None
            if not self.crowd.stopping:
                self.error("disconnected")
            with contextlib.suppress(Exception):
                await client.disconnect()
            attempt += 1
            wait = RECONNECT_FIRST

    async def on_pushed(self, message: dict) -> None:
        seq = message["seq"]
        if message["push_id"] in self.seen:
            self.duplicates += 1
            return
        if seq > self.cursor + 1:
            # A gap: fetch what is missing first, so it shows in order; this one shows either way.
            await self.catch_up()
        elif seq == self.cursor + 1:
            self.cursor = seq
        self.arrived(message)

    def arrived(self, message: dict) -> None:
        push_id = message["push_id"]
        if push_id in self.seen:
            self.duplicates += 1
            return
        self.seen.add(push_id)
        self.shown.append(push_id)
        asyncio.get_running_loop().create_task(self.receipt(push_id))
        asyncio.get_running_loop().create_task(self.acknowledge(push_id))

    async def receipt(self, push_id: int) -> None:
        await asyncio.sleep(random.uniform(*RECEIPT_DELAY))
        client = self.client
        if client is not None:
            with contextlib.suppress(Exception):
                await client.emit(names.SCRIPT_RECEIVED, {"push_id": push_id}, namespace=names.AGENT)

    async def catch_up(self) -> None:
        """One fetch at a time; a failure is retried with backoff (as the page does)."""
        if self.filling is None or self.filling.done():
            self.filling = asyncio.get_running_loop().create_task(self._fill_until_done())
        await asyncio.shield(self.filling)

    async def _fill_until_done(self) -> None:
        wait = RETRY_FIRST
        while not self.crowd.closed:
            if await self._fill():
                return
            await asyncio.sleep(wait * random.uniform(0.75, 1.25))
            wait = min(wait * 2, RETRY_MAX)

    async def _fill(self) -> bool:
        after = self.cursor
        try:
            async with self.crowd.http.get(
                f"{self.url}/api/v1/pushes",
                params={"after_seq": str(after)},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                if response.status != 200:
                    self.error(f"fetch HTTP {response.status}")
                    return False
                body = await response.json()
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            self.error(f"fetch failed ({type(exc).__name__})")
            return False
        for message in body["pushes"]:
            if message["push_id"] not in self.seen:
                self.fetched += 1
            self.arrived(message)
        newest = max((m["seq"] for m in body["pushes"]), default=after)
        self.cursor = max(self.cursor, newest, body.get("last_seq") or 0)
        return True

    async def check_regularly(self) -> None:
        await asyncio.sleep(random.uniform(0, CHECK_EVERY))
        while not self.crowd.closed:
            await self.catch_up()
            await asyncio.sleep(CHECK_EVERY)

    async def acknowledge(self, push_id: int) -> None:
        """Press "Got it" after reading, then retry until the server confirms."""
        await asyncio.sleep(random.uniform(*READ_PAUSE))
        wait = RETRY_FIRST
        self.pending[push_id] = wait
        while not self.crowd.closed:
            if await self._send_ack(push_id):
                self.acked.add(push_id)
                self.pending.pop(push_id, None)
                return
            await asyncio.sleep(wait * random.uniform(0.75, 1.25))
            wait = min(wait * 2, RETRY_MAX)
            self.pending[push_id] = wait

    async def _send_ack(self, push_id: int) -> bool:
        client = self.client
        if client is not None:
            try:
                answer = await client.call(
                    names.SCRIPT_ACK, {"push_id": push_id}, namespace=names.AGENT, timeout=ACK_TIMEOUT
                )
            except Exception as exc:
                self.error(f"ack over socket failed ({type(exc).__name__})")
                return False
            if isinstance(answer, dict) and answer.get("ok"):
                return True
            self.error(f"ack refused ({(answer or {}).get('error')})")
            return False
        try:
            async with self.crowd.http.post(
                f"{self.url}/api/v1/pushes/{push_id}/ack",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                if response.status == 200:
                    return True
                self.error(f"ack over HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.error(f"ack over HTTP failed ({type(exc).__name__})")
        return False

    def result(self) -> dict:
        return {
            "user_id": self.user_id,
            "shown": self.shown,
            "duplicates": self.duplicates,
            "fetched": self.fetched,
            "acked": sorted(self.acked),
            "pending": sorted(self.pending),
            "connections": self.connections,
            "on": self.urls.index(self.url) if self.client is not None else None,
        }


class Crowd:
    """Agents of one process, sharing one HTTP session."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.stopping = False
        self.closed = False
        self.http: aiohttp.ClientSession

    async def run(self, urls: list[str], home: int, people: list[tuple[str, int]], out: Path) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        agents = [Agent(self, urls, home, token, user_id) for token, user_id in people]
        tasks = []
        for offset in range(0, len(agents), 50):
            batch = agents[offset : offset + 50]
            tasks += [asyncio.create_task(a.life()) for a in batch]
            await asyncio.wait_for(asyncio.gather(*(a.ready.wait() for a in batch)), 120)
        tasks += [asyncio.create_task(a.check_regularly()) for a in agents]
        print(f"ready {len(agents)}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # "settle": wait for pending acks
        deadline = time.monotonic() + 2 * RETRY_MAX
        while any(a.pending for a in agents) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        self.closed = True
        result = {"agents": [a.result() for a in agents], "errors": dict(self.errors)}
        out.write_text(json.dumps(result))
        self.stopping = True
        for agent in agents:
            if agent.client is not None:
                with contextlib.suppress(Exception):
                    await agent.client.disconnect()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.http.close()
        print("done", flush=True)


def crowd_main(urls_json: str, home: str, people_file: str, out: str) -> None:
    people = [tuple(p) for p in json.loads(Path(people_file).read_text())]
    asyncio.run(Crowd().run(json.loads(urls_json), int(home), people, Path(out)))  # type: ignore[arg-type]


# --- the infrastructure: Redis and two serve processes -----------------------------------------


def server_seconds(response: aiohttp.ClientResponse) -> float | None:
    """Return the app's own time from ``Server-Timing: app;dur=<ms>``, if the answer has it."""
    _, found, duration = response.headers.get("Server-Timing", "").partition("dur=")
    try:
        return float(duration) / 1000 if found else None
    except ValueError:
        return None


def slow_call_causes(
    slow: list[tuple[float, float, float | None]],
    faults: dict[str, list[float]],
    pushes: list[float],
    lags: list[tuple[float, float]],
) -> str:
    """Say where the time of calls slower than 1 s went and when they happened: inside the
    app or before it, during a fault (until 30 s after it), just after a push (3 s), or while
    the load generator's own loop was late by 200 ms or more."""
    if not slow:
        return "none"
    inside = sum(1 for _, _, app in slow if app is not None and app > 1.0)
    counts: Counter[str] = Counter()
    for started, took, _app in slow:
        ended = started + took
        if any(start <= ended and started <= end + 30 for start, end in faults.values()):
            counts["during a fault or the 30 s after"] += 1
        elif any(0 <= started - at <= 3 for at in pushes):
            counts["within 3 s of a push"] += 1
        else:
            counts["other"] += 1
        if any(started <= at <= ended + 0.1 and lag >= 0.2 for at, lag in lags):
            counts["(generator loop ≥ 200 ms late meanwhile)"] += 1
    return (
        f"{inside} of {len(slow)} spent over 1 s inside the app (Server-Timing), "
        f"{len(slow) - inside} waited before it; " + ", ".join(f"{kind}: {n}" for kind, n in counts.items())
    )


class Balancer:
    """Round-robin over the processes; a refused connection is sent to the next one at once."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.turn = itertools.count()
        self.rerouted: Counter[str] = Counter()

    async def send(
        self, session: aiohttp.ClientSession, what: str, path: str, **kwargs
    ) -> tuple[int, bytes, str, float | None]:
        """POST to the next process; return (status, body, url used, the app's own seconds
        from its Server-Timing header)."""
        first = next(self.turn)
        headers_for = kwargs.pop("headers_for", lambda url: {})
        for offset in range(len(self.urls)):
            base = self.urls[(first + offset) % len(self.urls)]
            headers = headers_for(base + path)
            try:
                async with session.post(base + path, headers=headers, **kwargs) as response:
                    return response.status, await response.read(), base, server_seconds(response)
            except aiohttp.ClientConnectorError:
                self.rerouted[what] += 1
                continue
        raise aiohttp.ClientError("every process refused the connection")


class Load:
    """Phone calls, complaints and pushes at fixed rates (open loop), with their outcomes."""

    def __init__(self, urls: list[str], intake_token: str, manager_token: str, script_id: int):
        self.balancer = Balancer(urls)
        self.intake_token = intake_token
        self.manager_token = manager_token
        self.script_id = script_id
        self.validator = RequestValidator(TOKEN)
        self.errors: Counter[str] = Counter()
        #: (started, seconds, process index or -1) of every voice webhook
        self.calls: list[tuple[float, float, int]] = []
        #: (started, seconds, the app's own seconds) of every voice webhook slower than 1 s
        self.slow_calls: list[tuple[float, float, float | None]] = []
        self.calls_ok = 0
        self.calls_sent = 0
        self.complaints_sent = 0
        self.complaints_accepted = 0
        self.pushes: list[tuple[float, int, str]] = []  # (started, status, detail)
        self.in_flight = 0
        self.skipped: Counter[str] = Counter()
        self.sids = itertools.count(1)
        self.stop = asyncio.Event()

    async def call(self, session: aiohttp.ClientSession) -> None:
        params = {
            "CallSid": f"CA{next(self.sids):032d}",
            "AccountSid": "AC" + "0" * 32,
            "From": "+16175550123",
            "To": NUMBER,
        }

        def signed(url: str) -> dict[str, str]:
            return {"X-Twilio-Signature": self.validator.compute_signature(url, params)}

        started = time.monotonic()
        self.calls_sent += 1
        try:
            status, body, base, inside = await self.balancer.send(
                session, "voice", "/twilio/voice", data=params, headers_for=signed
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.errors[f"voice: {type(exc).__name__}"] += 1
            self.calls.append((started, time.monotonic() - started, -1))
            return
        took = time.monotonic() - started
        self.calls.append((started, took, self.balancer.urls.index(base)))
        if took > 1.0:
            self.slow_calls.append((started, took, inside))
        if status != 200:
            self.errors[f"voice: HTTP {status}"] += 1
        elif not body.startswith(b"<?xml") and b"<Response" not in body:
            self.errors["voice: not TwiML"] += 1
        elif b"<Gather" not in body:
            self.errors["voice: announcement not played"] += 1
        else:
            self.calls_ok += 1

    async def complaint(self, session: aiohttp.ClientSession, n: int) -> None:
        """Post one complaint; a 503 is sent again after a backoff (1 s doubling to 8 s) for
        up to a minute, as an integration that honours Retry-After would. A timeout is not
        retried (the complaint may have been stored)."""
        self.complaints_sent += 1
        body = {"category": "plow", "zip": f"021{n % 30:02d}", "text": f"Street not plowed ({n})"}
        wait, give_up = 1.0, time.monotonic() + 60
        while True:
            try:
                status, answer, _, _ = await self.balancer.send(
                    session,
                    "complaint",
                    "/api/v1/complaints",
                    json=body,
                    headers_for=lambda url: {"Authorization": f"Bearer {self.intake_token}"},
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.errors[f"complaint: {type(exc).__name__} (not retried)"] += 1
                return
            if status == 201:
                accepted = json.loads(answer)["accepted"]
                self.complaints_accepted += accepted if isinstance(accepted, int) else len(accepted)
                return
            code = ""
            with contextlib.suppress(ValueError):
                code = json.loads(answer).get("error", {}).get("code", "")
            retry = status == 503 and time.monotonic() < give_up
            self.errors[f"complaint: HTTP {status} {code}{' (retried)' if retry else ''}"] += 1
            if not retry:
                return
            await asyncio.sleep(wait)
            wait = min(wait * 2, 8.0)

    async def push(self, session: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        try:
            status, answer, _, _ = await self.balancer.send(
                session,
                "push",
                f"/api/v1/scripts/{self.script_id}/push",
                json={"audience": "all"},
                headers_for=lambda url: {"Authorization": f"Bearer {self.manager_token}"},
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.errors[f"push: {type(exc).__name__}"] += 1
            self.pushes.append((started, 0, type(exc).__name__))
            return
        if status != 201:
            self.errors[f"push: HTTP {status}"] += 1
        self.pushes.append((started, status, answer[:120].decode(errors="replace")))

    async def steady(self, session: aiohttp.ClientSession, rate: float, make, what: str) -> None:
        """Start ``make(n)`` ``rate`` times a second until stopped (at most 1,000 in flight)."""
        began = time.monotonic()
        tasks: set[asyncio.Task] = set()
        for n in itertools.count():
            at = began + n / rate
            delay = at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                break
            if len(tasks) >= 1000:
                self.skipped[what] += 1
                continue
            task = asyncio.create_task(make(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--crowd":
        crowd_main(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--calls", type=float, default=50.0, help="voice webhooks per second")
    parser.add_argument("--complaints", type=float, default=20.0, help="complaints per second")
    parser.add_argument("--push-every", type=float, default=10.0, help="seconds between pushes")
    parser.add_argument("--redis-down", type=float, default=5.0, help="seconds Redis stays stopped")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder (printed)")
    args = parser.parse_args()
    load_average = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="cc-soak-"))
    (folder / "redis").mkdir()
    server = OwnedRedis(folder / "redis")
    server.start()
    prefix = "ccsoak"
    store = Store(redis.Redis(port=server.port, decode_responses=True), prefix)
    live_announcement(
        store,
        NUMBER,
        {"en": "Trash pickup is suspended.", "es": "Sin recogida de basura."},
        {"type": "enqueue", "queue": "agents"},
    )
    Categories(store).create(
        {"code": "snow_plowing", "name": "Request for Snow Plowing", "aliases": ["plow"]}
    )
    accounts = Accounts(store)
    intake_token = accounts.create_token(
        accounts.create_user("benchintake", "manager", "benchmark password").username
    )
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def env_for(index: int) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": server.url,
            "CRISIS_KEY_PREFIX": prefix,
            "CRISIS_INSTANCE_PATH": str(folder / f"instance-{index}"),
            "SECRET_KEY": "bench",
            "TWILIO_AUTH_TOKEN": TOKEN,
            "CRISIS_SEED_CATALOGUE": "0",
            "PYTHONUNBUFFERED": "1",
        }

    consoles: list[subprocess.Popen[bytes]] = [
        start_console(env_for(i), folder / f"serve-{i}.log", ports[i]) for i in range(2)
    ]
    crowds: list[subprocess.Popen[str]] = []
    try:
        http, script_id = manager_api(urls[0], store)
        manager_token = http.headers["Authorization"].split(" ", 1)[1]
        tokens = make_agents(store, args.agents, 1)
        user_ids = [int(store.users.id_for_name(f"agent{n:05d}") or 0) for n in range(1, args.agents + 1)]
        started_connecting = time.monotonic()
        for home in range(2):
            people = [[t, u] for i, (t, u) in enumerate(zip(tokens, user_ids, strict=True)) if i % 2 == home]
            (folder / f"people-{home}.json").write_text(json.dumps(people))
            crowds.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.soak",
                        "--crowd",
                        json.dumps(urls),
                        str(home),
                        str(folder / f"people-{home}.json"),
                        str(folder / f"agents-{home}.json"),
                    ],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=open(folder / f"crowd-{home}.log", "w"),  # noqa: SIM115
                    text=True,
                )
            )
        for crowd in crowds:
            line = crowd.stdout.readline().strip()  # type: ignore[union-attr]
            if not line.startswith("ready"):
                raise RuntimeError(f"agents did not connect: {line!r} (see {folder})")
        connect_seconds = time.monotonic() - started_connecting
        first_seq = store.pushes.last_seq()
        rss = {"start": [rss_kib(c.pid) for c in consoles]}
        load = Load(urls, intake_token, manager_token, script_id)
        duration = args.minutes * 60
        faults: dict[str, list[float]] = {}
        notes: list[str] = []
        loop_lag: list[float] = []
        lag_at: list[tuple[float, float]] = []  # (when, lag) of every lag sample

        async def run() -> None:
            began = time.monotonic()
            timeout = aiohttp.ClientTimeout(total=TWILIO_GIVES_UP)
            async with aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
            ) as session:

                async def pusher() -> None:
                    sent = []
                    while not load.stop.is_set():
                        sent.append(asyncio.create_task(load.push(session)))
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(load.stop.wait(), args.push_every)
                    await asyncio.gather(*sent)

                async def at(share: float) -> None:
                    await asyncio.sleep(max(0.0, began + share * duration - time.monotonic()))

                async def redis_restart() -> None:
                    await at(0.40)
                    down = time.monotonic()
                    await asyncio.to_thread(server.stop)
                    await asyncio.sleep(args.redis_down)
                    await asyncio.to_thread(server.start)
                    faults["Redis restart"] = [down, time.monotonic()]

                async def middle() -> None:
                    await at(0.50)
                    rss["middle"] = [rss_kib(c.pid) for c in consoles]

                async def crash() -> None:
                    await at(0.60)
                    killed = time.monotonic()
                    consoles[1].kill()
                    consoles[1].wait()
                    await asyncio.sleep(1.0)  # a supervisor's restart delay
                    consoles[1] = await asyncio.to_thread(
                        start_console, env_for(1), folder / "serve-1-restarted.log", ports[1]
                    )
                    faults["serve kill -9"] = [killed, time.monotonic()]

                async def lag() -> None:
                    while not load.stop.is_set():
                        before = time.monotonic()
                        await asyncio.sleep(0.1)
                        loop_lag.append(time.monotonic() - before - 0.1)
                        lag_at.append((time.monotonic(), loop_lag[-1]))

                async def stopper() -> None:
                    await at(1.0)
                    load.stop.set()

                await asyncio.gather(
                    load.steady(session, args.calls, lambda n: load.call(session), "voice"),
                    load.steady(session, args.complaints, lambda n: load.complaint(session, n), "complaint"),
                    pusher(),
                    redis_restart(),
                    middle(),
                    crash(),
                    lag(),
                    stopper(),
                )

        load_began = time.monotonic()
        asyncio.run(run())
        load_seconds = time.monotonic() - load_began
        rss["end"] = [rss_kib(c.pid) for c in consoles]
        time.sleep(SETTLE_SECONDS)
        for crowd in crowds:
            crowd.stdin.write("settle\n")  # type: ignore[union-attr]
            crowd.stdin.flush()  # type: ignore[union-attr]
        for crowd in crowds:
            crowd.wait(3 * RETRY_MAX + 60)
        agents = []
        crowd_errors: Counter[str] = Counter()
        for home in range(2):
            result = json.loads((folder / f"agents-{home}.json").read_text())
            agents += result["agents"]
            crowd_errors.update(result["errors"])
        # What the store holds: every push made during the run, its acknowledgements, the complaints.
        stored = [
            int(p["id"]) for p in store.pushes.after(first_seq, limit=100000) if int(p["seq"]) > first_seq
        ]
        lost_pushes = sum(len(set(stored) - set(a["shown"])) for a in agents)
        duplicates = sum(a["duplicates"] for a in agents)
        fetched = sum(a["fetched"] for a in agents)
        confirmed = sum(len(set(a["acked"]) & set(stored)) for a in agents)
        pending = sum(len(a["pending"]) for a in agents)
        lost_acks = 0
        recorded = 0  # the pushes' status: acknowledged counts, summed
        audience = 0
        for push_id in stored:
            status = Pushes(store).status(push_id)
            recorded += status["acknowledged"]
            audience += status["audience_size"]
            _audience, _delivered, acked = store.pushes.receipts(push_id)
            lost_acks += sum(1 for a in agents if push_id in a["acked"] and str(a["user_id"]) not in acked)
        complaints_stored = store.complaints.length()
    finally:
        for crowd in crowds:
            if crowd.poll() is None:
                crowd.kill()
        for console in consoles:
            stop_console(console)
        server.stop()

    # --- the table ---------------------------------------------------------------------------
    def window(name: str) -> list[float]:
        start, end = faults.get(name, [float("nan")] * 2)
        return [lat for at, lat, _ in load.calls if start <= at <= end + 5.0]

    def ms(samples: list[float]) -> str:
        if not samples:
            return "—"
        return (
            f"{percentile(samples, 0.5) * 1000:.0f} / {percentile(samples, 0.99) * 1000:.0f} / "
            f"{max(samples) * 1000:.0f}"
        )

    every = [lat for _at, lat, _ in load.calls]
    slow = sum(1 for lat in every if lat > 1.0)
    slow_by = Counter(
        ("no answer" if index < 0 else f"serve {index}") for _at, lat, index in load.calls if lat > 1.0
    )
    answered = [lat for _at, lat, index in load.calls if index >= 0]
    errors = load.errors + crowd_errors
    voice_errors = {k: v for k, v in errors.items() if k.startswith("voice:")}
    other_errors = {k: v for k, v in errors.items() if not k.startswith("voice:")}
    call_rate = load.calls_sent / load_seconds
    answered_rate = load.calls_ok / load_seconds
    complaint_rate = load.complaints_accepted / load_seconds
    expected_acks = len(stored) * len(agents)
    pushes_ok = sum(1 for _at, status, _ in load.pushes if status == 201)
    rows = [
        ["duration", f"{load_seconds / 60:.1f} min of load (+ {SETTLE_SECONDS:.0f} s settle)"],
        [
            "agents",
            f"{len(agents)} connected in {connect_seconds:.0f} s "
            f"({sum(a['connections'] for a in agents) - len(agents)} reconnections during the run)",
        ],
        [
            "voice webhooks",
            f"{load.calls_sent:,} sent ({call_rate:.1f}/s of {args.calls:g}/s asked), {load.calls_ok:,} "
            f"answered with the announcement ({answered_rate:.1f}/s), {len(answered):,} answered at all, "
            f"{slow} slower than 1 s"
            + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(slow_by.items()))})" if slow else ""),
        ],
        [
            "voice webhooks slower than 1 s: where and when",
            slow_call_causes(load.slow_calls, faults, [at for at, _, _ in load.pushes], lag_at),
        ],
        ["phone webhook p50 / p99 / max ms, whole run", ms(every)],
        *[
            [f"… during {name} (from the fault until 5 s after recovery)", ms(window(name))]
            for name in ("Redis restart", "serve kill -9")
        ],
        [
            "complaints",
            f"{load.complaints_sent:,} sent, {load.complaints_accepted:,} accepted "
            f"({complaint_rate:.1f}/s of {args.complaints:g}/s asked), {complaints_stored:,} stored",
        ],
        ["pushes", f"{len(load.pushes)} attempted, {pushes_ok} answered 201, {len(stored)} stored"],
        ["lost pushes (agent × stored push never shown)", f"{lost_pushes} of {len(stored) * len(agents):,}"],
        [
            "duplicated pushes shown",
            f"0 shown twice; {duplicates} deliveries of a push already shown (ignored by push id); "
            f"{fetched} healed by fetch",
        ],
        [
            "lost acks (confirmed to the agent, missing from the push's status)",
            f"{lost_acks}; push status acknowledged {recorded:,} of {expected_acks:,} expected "
            f"(audience {audience:,}), "
            f"{confirmed:,} confirmed to agents, {pending} still retrying at the end",
        ],
        [
            "phone webhook errors (what Twilio would have seen)",
            "; ".join(f"{kind}: {count:,}" for kind, count in sorted(voice_errors.items())) or "none",
        ],
        [
            "other errors by kind (each retried by the client; what stayed lost is in the rows above)",
            "; ".join(f"{kind}: {count:,}" for kind, count in sorted(other_errors.items())) or "none",
        ],
        [
            "rerouted to the other process (refused connection)",
            "; ".join(f"{k}: {v:,}" for k, v in sorted(load.balancer.rerouted.items())) or "none",
        ],
        *[
            [
                f"RSS serve {i} start / middle / end MiB",
                " / ".join(f"{rss[p][i] / 1024:.0f}" for p in ("start", "middle", "end") if p in rss)
                + (" (end: the restarted process)" if i == 1 else ""),
            ]
            for i in range(2)
        ],
        [
            "load generator's loop lag p99 / max ms",
            f"{percentile(loop_lag, 0.99) * 1000:.0f} / {max(loop_lag, default=0) * 1000:.0f}",
        ],
    ]
    sustained = answered_rate >= 0.97 * args.calls and complaint_rate >= 0.97 * args.complaints
    if load.skipped:
        notes.append(f"Not started (1,000 already in flight): {dict(load.skipped)}.")
    notes.append(
        (
            "The asked rates were sustained."
            if sustained
            else f"NOT sustained on this machine: {answered_rate:.1f} calls/s answered and "
            f"{complaint_rate:.1f} accepted complaints/s achieved (see the rows)."
        )
        + f" Two gevent `serve` processes, a redis-server (append-only, fsync always), two crowd "
        f"processes of python-socketio AsyncClient agents and one asyncio load generator share "
        f"{os.cpu_count()} cores. Redis stopped (SIGTERM) at 40 % for {args.redis_down:g} s and started "
        "again with its AOF; serve 1 killed (SIGKILL) at 60 % and started again 1 s later. Phone "
        "latencies are of every voice webhook, measured by the load generator from the first attempt; "
        "p50 / p99 / max; the generator's own event-loop lag (its row) is part of them. Load average "
        f"{load_average:.2f} when the run began, {os.getloadavg()[0]:.2f} at the end (other work on "
        "the machine counts too)."
    )
    title = f"Soak: {args.minutes:g} min, {args.agents} agents on two processes, Redis restart and a crash"
    command = "python -m bench.soak " + " ".join(sys.argv[1:])
    if args.no_record:
        print(title, command, *(" | ".join(r) for r in rows), *notes, sep="\n")
    else:
        record(title, command, ["measure", "result"], rows, " ".join(notes))
    if args.keep:
        print(f"logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
