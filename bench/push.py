"""Push latency: from the push API call to the script on N agents' connections, beside a stock peer.

For each crowd size N it runs, on the same machine with the same clients (bench/agents.py, raw
Engine.IO over aiohttp in one separate asyncio process, each answering ``script.received`` as the
page does):

- the console (``python -m crisis_console serve``; two processes on one Redis from
  ``--two-processes-from`` agents up, the crowd split between them and every push made on the first);
- the peer, a stock Flask-SocketIO gevent broadcast server (bench/stock.py) with the same process
  count and a payload padded to the console's frame size;
- the same peer with agents that send no receipts: bare delivery, the floor.

Per server it reports the time to the **last** agent (median and worst over the pushes), p50/p99
over all deliveries, the push API time, server CPU µs per recipient (every server process, from
the first push until the receipts are in), the client process's CPU, RSS per connection, and the
ratio console / stock of the median time to the last agent. Appends the table to BENCHMARKS.md.

    .venv/bin/python -m bench.push [--agents 1000,5000,10000] [--pushes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import requests
from werkzeug.security import generate_password_hash

from bench.common import ROOT, cpu_seconds, percentile, record, rss_kib
from crisis_console import clock
from crisis_console.services import audit
from crisis_console.services.accounts import Accounts
from crisis_console.store import Store
from tests.servers import free_port, redis_for_tests, start_console, stop_console

PASSWORD = "benchmark password"
#: Seconds between pushes: longer than the pages' receipt delay (≤ 1.2 s), as a manager's
#: pushes are in practice minutes apart.
PUSH_INTERVAL = 2.0


def make_agents(store: Store, count: int, start: int) -> list[str]:
    """Create agents quickly (one shared password hash) and return a token for each."""
    accounts = Accounts(store)
    shared_hash = generate_password_hash(PASSWORD)
    tokens = []
    for number in range(start, start + count):
        name = f"agent{number:05d}"
        fields = {
            "username": name,
            "display_name": f"Agent {number}",
            "role": "agent",
            "team": f"T{number % 10}",
            "password_hash": shared_hash,
            "active": "1",
            "session_epoch": "0",
            "created_at": clock.iso(),
        }
        store.users.create(fields, audit.entry("bench", "user.created", "user", username=name))
        tokens.append(accounts.create_token(name, "bench"))
    return tokens


@contextmanager
def crowd(
    urls: list[str], tokens: list[str], folder: Path, *, receipts: bool = True
) -> Iterator[subprocess.Popen[str]]:
    """Connect one agent per token from a separate process (bench/agents.py) until the block ends.

    The tokens are dealt in turn to ``urls``; the arrival times end up in ``folder/arrivals.json``.
    Without ``receipts`` the agents send no ``script.received`` (delivery alone).
    """
    (folder / "tokens.json").write_text(json.dumps(tokens))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.agents",
            ",".join(urls),
            str(folder / "tokens.json"),
            str(folder / "arrivals.json"),
        ],
        cwd=ROOT,
        env={**os.environ, "CC_BENCH_RECEIPTS": "1" if receipts else "0"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline().strip()  # type: ignore[union-attr]
    if not line.startswith("ready"):
        process.kill()
        raise RuntimeError(f"agents did not connect: {line!r}")
    try:
        yield process
    finally:
        process.stdin.write("stop\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]
        process.wait(120)


def manager_api(base: str, store: Store) -> tuple[requests.Session, int]:
    """Return a manager session and an approved script id."""
    accounts = Accounts(store)
    writer = accounts.create_user("benchwriter", "manager", PASSWORD)
    reviewer = accounts.create_user("benchreviewer", "manager", PASSWORD)
    sessions = []
    for user in (writer, reviewer):
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {accounts.create_token(user.username)}"
        sessions.append(http)
    body = {
        "title": "Warming centres",
        "topic": "Shelters and services",
        "language": "en",
        "body": "Open **24 h**.",
    }
    script = sessions[0].post(f"{base}/api/v1/scripts", json=body).json()
    sessions[0].post(f"{base}/api/v1/scripts/{script['id']}/submit").raise_for_status()
    sessions[1].post(f"{base}/api/v1/scripts/{script['id']}/approve").raise_for_status()
    return sessions[0], script["id"]


@dataclass
class Servers:
    """The web processes under test, their URLs, and how to make one push."""

    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    tokens: list[str]
    #: Makes one push through the first process; returns its push id.
    push: Callable[[], int]

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def rss(self) -> int:
        return sum(rss_kib(p.pid) for p in self.processes)


@contextmanager
def console(
    size: int, processes: int, redis_url: str, folder: Path, module: str = "crisis_console"
) -> Iterator[Servers]:
    """Run the console's ``serve`` ``processes`` times on one Redis, with ``size`` agents
    (``module``: bench.simple_websocket for the console on simple-websocket)."""
    prefix = f"ccbench-{os.getpid()}-{size}"
    ports = [free_port() for _ in range(processes)]
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CRISIS_KEY_PREFIX": prefix,
        "SECRET_KEY": "bench",
        "CRISIS_SEED_CATALOGUE": "0",
    }
    started = []
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = Store(client, prefix)
    try:
        for index, port in enumerate(ports):
            own = {**env, "CRISIS_INSTANCE_PATH": str(folder / f"instance-{index}")}
            started.append(start_console(own, folder / f"serve-{index}.log", port, module))
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        http, script_id = manager_api(urls[0], store)

        def push() -> int:
            response = http.post(f"{urls[0]}/api/v1/scripts/{script_id}/push", json={"audience": "all"})
            response.raise_for_status()
            return int(response.json()["id"])

        yield Servers(urls, started, make_agents(store, size, 1), push)
    finally:
        for process in started:
            stop_console(process)
        store.delete_all()
        client.close()


def stock_payload(push_id: int, frame_bytes: int) -> dict[str, object]:
    """A ``script.pushed`` message like the console's, padded to the same frame size."""
    message: dict[str, object] = {
        "push_id": push_id,
        "seq": push_id,
        "script": {"id": 1, "title": "Warming centres", "topic": "Shelters and services", "language": "en"},
        "audience": "all",
        "pushed_by": "benchwriter",
        "body_html": "",
    }
    framing = len('42/agent,["script.pushed",]')
    message["body_html"] = "x" * max(
        0, frame_bytes - framing - len(json.dumps(message, separators=(",", ":")))
    )
    return message


@contextmanager
def stock(size: int, processes: int, redis_url: str, folder: Path, frame_bytes: int) -> Iterator[Servers]:
    """Run the stock broadcast server ``processes`` times (on a Redis queue when more than one)."""
    ports = [free_port() for _ in range(processes)]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for index, port in enumerate(ports):
            command = [sys.executable, "-m", "bench.stock", "--port", str(port)]
            if processes > 1:
                command += ["--queue", redis_url]
            with (folder / f"stock-{index}.log").open("wb") as log:
                started.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        for port in ports:
            wait_for(f"http://127.0.0.1:{port}/login", started)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        http = requests.Session()
        numbers = iter(range(1, 1_000_000))

        def push() -> int:
            push_id = next(numbers)
            http.post(f"{urls[0]}/push", json=stock_payload(push_id, frame_bytes)).raise_for_status()
            return push_id

        yield Servers(urls, started, [f"token{n}" for n in range(size)], push)
    finally:
        for process in started:
            stop_console(process)


def wait_for(url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    """Wait until ``url`` answers (a failure guard of 60 s, not a measure)."""
    deadline = time.monotonic() + 60
    while True:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a stock server exited")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.1)


@dataclass
class Result:
    """What one server did for one crowd size."""

    last_median_ms: float
    last_worst_ms: float
    p50_ms: float
    p99_ms: float
    received: int
    expected: int
    api_ms: float
    server_us: float
    client_us: float
    kib_per_connection: float
    frame_bytes: int
    skew_ms: list[float]


def measure(servers: Servers, pushes: int, folder: Path, *, receipts: bool = True) -> Result:
    """Connect the crowd to ``servers``, make ``pushes`` pushes and read what arrived."""
    size = len(servers.tokens)
    rss_before = servers.rss()
    sent: dict[int, float] = {}
    api_times: list[float] = []
    with crowd(servers.urls, servers.tokens, folder, receipts=receipts) as agents:
        time.sleep(1)
        per_connection = (servers.rss() - rss_before) / size
        cpu_before, client_before = servers.cpu(), cpu_seconds(agents.pid)
        for _ in range(pushes):
            started = time.time()
            push_id = servers.push()
            api_times.append(time.time() - started)
            sent[push_id] = started
            time.sleep(PUSH_INTERVAL)
        time.sleep(1.0)  # the last receipts (≤ 1.2 s after arrival) and their batch
        server_cpu = servers.cpu() - cpu_before
        client_cpu = cpu_seconds(agents.pid) - client_before
    result = json.loads((folder / "arrivals.json").read_text())
    arrivals = {int(k): v for k, v in result["arrivals"].items() if int(k) in sent}
    samples = [t - sent[pid] for pid, times in arrivals.items() for t in times]
    last = [max(times) - sent[pid] for pid, times in arrivals.items()]
    firsts = result["firsts"]
    # How far apart each process's share started: its first arrival there, process by process.
    skew = [max(f[str(pid)] for f in firsts) - min(f[str(pid)] for f in firsts) for pid in arrivals]
    recipients = size * pushes
    return Result(
        last_median_ms=statistics.median(last) * 1000,
        last_worst_ms=max(last) * 1000,
        p50_ms=percentile(samples, 0.5) * 1000,
        p99_ms=percentile(samples, 0.99) * 1000,
        received=len(samples),
        expected=recipients,
        api_ms=statistics.median(api_times) * 1000,
        server_us=server_cpu / recipients * 1e6,
        client_us=client_cpu / recipients * 1e6,
        kib_per_connection=per_connection,
        frame_bytes=int(result["frame_bytes"]),
        skew_ms=[seconds * 1000 for seconds in skew],
    )


def row(name: str, size: int, processes: int, result: Result, ratio: str) -> list[str]:
    """One line of the table."""
    return [
        f"{size:,}",
        str(processes),
        name,
        f"{result.last_median_ms:.0f} / {result.last_worst_ms:.0f}",
        f"{result.p50_ms:.0f} / {result.p99_ms:.0f}",
        f"{result.received:,} / {result.expected:,}",
        f"{result.api_ms:.1f}",
        f"{result.server_us:.0f}",
        f"{result.client_us:.0f}",
        f"{result.kib_per_connection:.0f}",
        f"{statistics.median(result.skew_ms):.1f} / {max(result.skew_ms):.1f}" if processes > 1 else "—",
        str(result.frame_bytes),
        ratio,
    ]


def run(size: int, processes: int, pushes: int, simple_websocket: bool = False) -> list[list[str]]:
    """Measure the console, then the stock peer, then the stock peer with agents that send no
    receipts (bare delivery), at one crowd size; return their rows. With ``simple_websocket``,
    the console on simple-websocket instead of gevent-websocket is measured too."""
    rows = []
    with ExitStack() as stack:
        redis_url, _how = stack.enter_context(redis_for_tests())
        folder = Path(tempfile.mkdtemp(prefix=f"cc-push-{size}-"))
        for name in ("console", "simple", "stock", "floor"):
            (folder / name).mkdir()
        with console(size, processes, redis_url, folder / "console") as servers:
            ours = measure(servers, pushes, folder / "console")
        if simple_websocket:
            with console(size, processes, redis_url, folder / "simple", "bench.simple_websocket") as servers:
                simple = measure(servers, pushes, folder / "simple")
        with stock(size, processes, redis_url, folder / "stock", ours.frame_bytes) as servers:
            peer = measure(servers, pushes, folder / "stock")
        with stock(size, processes, redis_url, folder / "floor", ours.frame_bytes) as servers:
            floor = measure(servers, pushes, folder / "floor", receipts=False)
    ratio = ours.last_median_ms / peer.last_median_ms
    rows.append(row("console", size, processes, ours, f"**{ratio:.2f}**"))
    if simple_websocket:
        rows.append(
            row(
                "console on simple-websocket",
                size,
                processes,
                simple,
                f"{simple.last_median_ms / peer.last_median_ms:.2f}",
            )
        )
    return [
        *rows,
        row("stock Flask-SocketIO", size, processes, peer, "1"),
        row(
            "stock, agents send no receipts",
            size,
            processes,
            floor,
            f"({ours.last_median_ms / floor.last_median_ms:.2f})",
        ),
    ]


def main() -> None:
    """Run each crowd size and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1000,5000,10000")
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--two-processes-from", type=int, default=10_000)
    parser.add_argument("--no-record", action="store_true", help="print, do not append to BENCHMARKS.md")
    parser.add_argument(
        "--simple-websocket",
        action="store_true",
        help="also run the console on simple-websocket (python-engineio's fallback) instead of gevent-websocket",
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows: list[list[str]] = []
    for size in (int(s) for s in args.agents.split(",") if s):
        rows += run(size, 2 if size >= args.two_processes_from else 1, args.pushes, args.simple_websocket)
    record(
        "Push to the last agent: the console beside a stock Flask-SocketIO broadcast",
        f"python -m bench.push --agents {args.agents} --pushes {args.pushes}"
        + (" --simple-websocket" if args.simple_websocket else ""),
        [
            "agents",
            "processes",
            "server",
            "to the last agent ms (median / worst)",
            "deliveries p50 / p99 ms",
            "received",
            "push API ms",
            "server CPU µs / recipient",
            "client CPU µs / recipient",
            "server KiB / connection",
            "shares start apart ms (median / worst)",
            "frame bytes",
            "console / stock",
        ],
        rows,
        "Agents are raw Engine.IO websocket clients in one separate asyncio process (bench/agents.py); each answers "
        "script.received 0.2–1.2 s after arrival as the page does, to both servers, so receipts are part of the load "
        "and of the server CPU. Pushes are 2 s apart. With two processes the crowd is split evenly and every push is "
        "made on the first; both servers then go through a Redis message queue. Client, servers and Redis share "
        f"{os.cpu_count()} cores; load average {load:.1f} at the start. The ratio is of the medians of the time "
        "to the last agent (in brackets: console / the stock server whose agents send no receipts, the floor of "
        "bare delivery). Shares start apart: per push, the gap between the first arrival through one process and "
        "through the other.",
        dry_run=args.no_record,
    )


if __name__ == "__main__":
    main()
