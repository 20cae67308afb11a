"""Push latency: from the push API call to the script on N agents' connections.

Starts the console (one gevent process), creates N agents, connects them from a separate
process (bench/agents.py, raw Engine.IO over aiohttp), makes M pushes a second apart, and
reports p50/p99/max of API call → arrival over all N×M deliveries, server CPU per
recipient and server memory per connection. Appends the table to BENCHMARKS.md.

    .venv/bin/python -m bench.push [--agents 100,1000,5000] [--pushes 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from werkzeug.security import generate_password_hash

from bench.common import ROOT, cpu_seconds, record, rss_kib, served_console, summary_ms
from crisis_console import clock
from crisis_console.services import audit
from crisis_console.services.accounts import Accounts
from crisis_console.store import Store

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
def crowd(base: str, tokens: list[str], folder: Path) -> Iterator[None]:
    """Connect one agent per token from a separate process (bench/agents.py) until the block ends.

    The arrival times end up in ``folder/arrivals.json``.
    """
    (folder / "tokens.json").write_text(json.dumps(tokens))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.agents",
            base,
            str(folder / "tokens.json"),
            str(folder / "arrivals.json"),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline().strip()
    if not line.startswith("ready"):
        process.kill()
        raise RuntimeError(f"agents did not connect: {line!r}")
    try:
        yield
    finally:
        process.stdin.write("stop\n")
        process.stdin.flush()
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


def run(size: int, pushes: int) -> list[str]:
    """Measure one crowd size; return a table row."""
    with served_console() as (base, store, server):
        http, script_id = manager_api(base, store)
        tokens = make_agents(store, size, 1)
        folder = Path(tempfile.mkdtemp(prefix="cc-push-"))
        rss_before = rss_kib(server.pid)
        sent: dict[int, float] = {}
        api_times: list[float] = []
        with crowd(base, tokens, folder):
            time.sleep(1)
            per_connection = (rss_kib(server.pid) - rss_before) / size
            cpu_before = cpu_seconds(server.pid)
            for _ in range(pushes):
                started = time.time()
                response = http.post(f"{base}/api/v1/scripts/{script_id}/push", json={"audience": "all"})
                api_times.append(time.time() - started)
                response.raise_for_status()
                sent[response.json()["id"]] = started
                time.sleep(PUSH_INTERVAL)
            time.sleep(1.0)
            cpu_per = (cpu_seconds(server.pid) - cpu_before) / (size * pushes) * 1000
        arrivals = json.loads((folder / "arrivals.json").read_text())
        samples = [t - sent[int(pid)] for pid, times in arrivals.items() for t in times if int(pid) in sent]
        p50, p99, worst = summary_ms(samples)
        return [
            f"{size:,}",
            str(pushes),
            f"{len(samples):,} / {size * pushes:,}",
            f"{p50:.1f}",
            f"{p99:.1f}",
            f"{worst:.1f}",
            f"{summary_ms(api_times)[0]:.1f}",
            f"{cpu_per:.3f}",
            f"{per_connection:.0f}",
        ]


def main() -> None:
    """Run each crowd size and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="100,1000,5000")
    parser.add_argument("--pushes", type=int, default=10)
    args = parser.parse_args()
    rows = [run(int(size), args.pushes) for size in args.agents.split(",") if size]
    record(
        "Push latency: API call → script.pushed on every agent connection (one gevent web process)",
        f"python -m bench.push --agents {args.agents} --pushes {args.pushes}",
        [
            "agents",
            "pushes",
            "received",
            "p50 ms",
            "p99 ms",
            "max ms",
            "API call p50 ms",
            "server CPU ms / recipient",
            "server KiB / connection",
        ],
        rows,
        "Agents are raw Engine.IO websocket clients in one separate asyncio process (bench/agents.py); each answers "
        "script.received as the page does, so receipts and push.progress are part of the load. Pushes are 2 s apart (pages answer within 0.2–1.2 s); "
        "REDIS_URL mode, so every emit goes through the Redis message queue. Client, server and Redis share 2 cores.",
    )


if __name__ == "__main__":
    main()
