"""Phone-line webhook speed: signed POST /twilio/voice with an announcement playing.

16 concurrent keep-alive connections for a few seconds, measuring requests per second and
p50/p99 latency, on the webhooks service (``serve --only webhooks``, gunicorn threads) and
on the main gevent process, each quiet and while 5,000 agent sockets receive a push every
second. Appends the table to BENCHMARKS.md.

    .venv/bin/python -m bench.voice [--agents 5000] [--seconds 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import requests
from twilio.request_validator import RequestValidator

from bench.common import ROOT, record, served_console, summary_ms, wrk_post
from bench.push import crowd, make_agents, manager_api
from crisis_console.store import connection_url
from tests.helpers import live_announcement
from tests.servers import free_port, stop_console

TOKEN = "bench-twilio-token"
NUMBER = "+16175550311"


async def hammer(
    url: str, params: dict[str, str], signature: str, concurrency: int, seconds: float
) -> list[float]:
    """Post the same signed request from ``concurrency`` connections for ``seconds``; return latencies."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    headers = {"X-Twilio-Signature": signature}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.post(url, data=params, headers=headers) as response:
                    body = await response.read()
                    assert response.status == 200 and b"<Gather" in body, (response.status, body[:200])
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def measure(base: str, concurrency: int, seconds: float) -> list[str]:
    """Run the load against one service and return the table cells."""
    url = f"{base}/twilio/voice"
    params = {"CallSid": "CA" + "1" * 32, "From": "+16175550123", "To": NUMBER, "AccountSid": "AC" + "0" * 32}
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    if shutil.which("wrk"):
        rate, p50, p99, worst = wrk_post(
            url,
            urlencode(params),
            {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
            concurrency,
            seconds,
        )
        return [f"{rate:,.0f}", f"{p50:.1f}", f"{p99:.1f}", f"{worst:.1f}"]
    asyncio.run(hammer(url, params, signature, concurrency, 1.0))  # warm up
    latencies = asyncio.run(hammer(url, params, signature, concurrency, seconds))
    p50, p99, worst = summary_ms(latencies)
    return [f"{len(latencies) / seconds:,.0f}", f"{p50:.1f}", f"{p99:.1f}", f"{worst:.1f}"]


def start_webhooks(env: dict[str, str], port: int, folder: Path) -> subprocess.Popen[bytes]:
    """Start ``serve --only webhooks`` and wait until it answers."""
    with (folder / "webhooks.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "crisis_console", "serve", "--only", "webhooks", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    for _ in range(100):
        try:
            requests.post(f"http://127.0.0.1:{port}/twilio/voice", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the webhooks service did not start")


def main() -> None:
    """Measure quiet and broadcasting, on both services."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    os.environ["TWILIO_AUTH_TOKEN"] = TOKEN  # the served console inherits it
    rows: list[list[str]] = []
    with served_console() as (console, store, _server):
        live_announcement(
            store,
            NUMBER,
            {"en": "Trash pickup is suspended.", "es": "Sin recogida de basura."},
            {"type": "enqueue", "queue": "agents"},
        )
        folder = Path(tempfile.mkdtemp(prefix="cc-voice-"))
        env = {
            **os.environ,
            "REDIS_URL": connection_url(store.redis),
            "CRISIS_KEY_PREFIX": store.keys.prefix,
            "CRISIS_INSTANCE_PATH": str(folder),
            "SECRET_KEY": "bench",
        }
        webhooks_port = free_port()
        webhooks = start_webhooks(env, webhooks_port, folder)
        try:
            services = [("webhooks service (gunicorn 2×4 threads)", f"http://127.0.0.1:{webhooks_port}")]
            services.append(("main process (gevent, Socket.IO)", console))
            for name, base in services:
                rows.append([name, "quiet", *measure(base, args.concurrency, args.seconds)])
            http, script_id = manager_api(console, store)
            tokens = make_agents(store, args.agents, 1)
            with crowd(console, tokens, folder):
                stop = threading.Event()

                def push_every_second() -> None:
                    while not stop.is_set():
                        http.post(f"{console}/api/v1/scripts/{script_id}/push", json={"audience": "all"})
                        stop.wait(1.0)

                pusher = threading.Thread(target=push_every_second, daemon=True)
                pusher.start()
                for name, base in services:
                    rows.append(
                        [
                            name,
                            f"push to {args.agents:,} sockets every second",
                            *measure(base, args.concurrency, args.seconds),
                        ]
                    )
                stop.set()
                pusher.join()
        finally:
            stop_console(webhooks)
    record(
        f"Phone webhook: signed POST /twilio/voice, announcement playing, {args.concurrency} connections",
        f"python -m bench.voice --agents {args.agents} --seconds {args.seconds} --concurrency {args.concurrency}",
        ["service", "while", "req/s", "p50 ms", "p99 ms", "max ms"],
        rows,
        (
            "Load from wrk (2 threads, keep-alive)"
            if shutil.which("wrk")
            else "Load from one asyncio process (aiohttp)"
        )
        + ". Console, webhooks service, Redis, the agent crowd and the load generator share the machine's 2 cores.",
    )


if __name__ == "__main__":
    main()
