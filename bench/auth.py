"""Authenticated requests and socket connections against the served console.

Measures what every later feature pays on each request and connection: a bearer-token
API request (token hash lookup + user load) over keep-alive, a cookie-session page load,
and authenticated Socket.IO connections (handshake + role check + room joins), with the
server's memory per open connection.

    .venv/bin/python -m bench.auth [--requests 500] [--sockets 100,500]
"""

from __future__ import annotations

import argparse
import threading
import time

import requests
import socketio

from bench.common import cpu_seconds, record, rss_kib, served_console, summary_ms
from crisis_console.services.accounts import Accounts

PASSWORD = "benchmark password"


def timed_requests(session: requests.Session, url: str, count: int) -> list[float]:
    """Time ``count`` sequential GETs on one keep-alive connection."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        response = session.get(url)
        samples.append(time.perf_counter() - start)
        response.raise_for_status()
    return samples


def connect_many(base: str, token: str, count: int) -> tuple[list[float], list[socketio.Client]]:
    """Open ``count`` authenticated /agent sockets, 20 at a time; return connect times."""
    samples: list[float] = []
    clients: list[socketio.Client] = []
    lock = threading.Lock()

    def one() -> None:
        client = socketio.Client(reconnection=False)
        start = time.perf_counter()
        client.connect(
            base, namespaces=["/agent"], transports=["websocket"], auth={"token": token}, wait_timeout=30
        )
        elapsed = time.perf_counter() - start
        with lock:
            samples.append(elapsed)
            clients.append(client)

    for offset in range(0, count, 20):
        batch = [threading.Thread(target=one) for _ in range(min(20, count - offset))]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join()
    return samples, clients


def main() -> None:
    """Run the benchmark and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--sockets", default="100,500")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sockets.split(",") if n]
    rows: list[list[str]] = []
    with served_console() as (base, store, process):
        accounts = Accounts(store)
        agent = accounts.create_user("benchagent", "agent", PASSWORD)
        token = accounts.create_token(agent.username, "bench")

        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        timed_requests(api, f"{base}/api/v1/me", 20)  # warm up
        p50, p99, worst = summary_ms(timed_requests(api, f"{base}/api/v1/me", args.requests))
        rows.append(
            [
                f"GET /api/v1/me, bearer token (n={args.requests})",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{worst:.1f}",
                "—",
            ]
        )

        browser = requests.Session()
        browser.post(
            f"{base}/api/v1/session", json={"username": agent.username, "password": PASSWORD}
        ).raise_for_status()
        timed_requests(browser, f"{base}/agent", 20)
        p50, p99, worst = summary_ms(timed_requests(browser, f"{base}/agent", args.requests))
        rows.append(
            [
                f"GET /agent page, session cookie (n={args.requests})",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{worst:.1f}",
                "—",
            ]
        )

        for size in sizes:
            rss_before = rss_kib(process.pid)
            cpu_before = cpu_seconds(process.pid)
            samples, clients = connect_many(base, token, size)
            time.sleep(0.5)
            per_connection = (rss_kib(process.pid) - rss_before) / size
            cpu_per = (cpu_seconds(process.pid) - cpu_before) / size * 1000
            p50, p99, worst = summary_ms(samples)
            rows.append(
                [
                    f"socket connect /agent with token, {size} clients (20 at a time)",
                    f"{p50:.1f}",
                    f"{p99:.1f}",
                    f"{worst:.1f}",
                    f"{per_connection:.0f} KiB RSS, {cpu_per:.2f} ms CPU per connection",
                ]
            )
            for client in clients:
                client.disconnect()
            time.sleep(0.5)
    record(
        "Authenticated requests and socket connections (one gevent web process)",
        "python -m bench.auth " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        ["what", "p50 ms", "p99 ms", "max ms", "server cost"],
        rows,
        "Client and server share the machine's 2 cores; the client is python-socketio's threaded client.",
    )


if __name__ == "__main__":
    main()
