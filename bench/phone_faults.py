"""Phone-line webhooks while Redis fails: p50/p99 of signed voice webhooks under each fault.

One ``serve`` process (gevent) reaches a redis-server this benchmark owns through a small
TCP proxy (a process of its own) that can add latency. Callers place calls without pause
from ``--concurrency`` connections: POST /twilio/voice (an announcement is playing), then
the call's completed status callback. Each phase loads the line for ``--seconds``; the
fault starts one second in and ends two seconds before the end, so the table includes the
way in and out:

- none: Redis healthy;
- refused: Redis stopped (connections refused), then started again;
- paused: Redis frozen with SIGSTOP (connections open, nothing answered), then SIGCONT;
- slow: every answer from Redis held 400 ms by the proxy;
- killed and restarted: ``kill -9`` (as a crash or failover), started again (its AOF kept).

Every answer must be 200 with valid TwiML; the calls placed must all be counted in the
announcement's statistics once Redis is back. During the pause one API call shows how
fast the API fails. Then ``serve`` is started with Redis down, to see whether it answers.

    .venv/bin/python -m bench.phone_faults [--seconds 10] [--concurrency 8] [--label after]

``--no-record`` prints the table without appending to BENCHMARKS.md (for measuring an
older checkout: ``PYTHONPATH=<checkout> python <this file> --no-record``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import redis
import requests
from twilio.request_validator import RequestValidator

from bench.common import percentile, record
from crisis_console.services.accounts import Accounts
from crisis_console.services.ivr_state import LastKnownState
from crisis_console.store import Store
from tests.helpers import live_announcement
from tests.servers import OwnedRedis, free_port, start_console, stop_console

TOKEN = "bench-twilio-token"
NUMBER = "+16175550311"
PREFIX = "ccfaults"
SLOW_SECONDS = 0.4
TWILIO_GIVES_UP = 15.0


def run_proxy(listen_port: int, upstream_port: int) -> None:
    """Forward TCP to Redis; while SIGUSR1 has switched it on, hold each answer SLOW_SECONDS."""
    slow = {"on": False}
    signal.signal(signal.SIGUSR1, lambda *_: slow.update(on=not slow["on"]))

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: bool) -> None:
        try:
            while data := await reader.read(65536):
                if delay and slow["on"]:
                    await asyncio.sleep(SLOW_SECONDS)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pipe(client_reader, server_writer, False), pipe(server_reader, client_writer, True)
        )

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def start_proxy(upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start the proxy process; return it and its port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--proxy", str(port), str(upstream_port)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


_sids = itertools.count(1)


async def load(
    base: str, concurrency: int, seconds: float, started_at: list[float] | None = None
) -> tuple[list[float], int, list[str]]:
    """Place calls for ``seconds``; return latencies (s), calls placed and failures (and, in
    ``started_at``, when each request began, by the monotonic clock)."""
    validator = RequestValidator(TOKEN)
    latencies: list[float] = []
    started_at = started_at if started_at is not None else []
    failures: list[str] = []
    placed = 0
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=TWILIO_GIVES_UP)

    async def post(session: aiohttp.ClientSession, path: str, params: dict[str, str]) -> bytes | None:
        url = base + path
        headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
        started = time.monotonic()
        try:
            async with session.post(url, data=params, headers=headers) as response:
                body = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            latencies.append(time.monotonic() - started)
            started_at.append(started)
            failures.append(f"{path}: {type(exc).__name__}")
            return None
        latencies.append(time.monotonic() - started)
        started_at.append(started)
        if status != 200:
            failures.append(f"{path}: HTTP {status}")
            return None
        try:
            return body if ET.fromstring(body).tag == "Response" else None
        except ET.ParseError:
            failures.append(f"{path}: not TwiML")
            return None

    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def caller() -> None:
            nonlocal placed
            while time.monotonic() < deadline:
                params = {"CallSid": f"CA{next(_sids):032d}", "From": "+16175550123", "To": NUMBER}
                body = await post(session, "/twilio/voice", params)
                placed += 1
                if body is not None and b"<Gather" not in body:
                    failures.append("/twilio/voice: no announcement")
                await post(session, "/twilio/voice/status", {**params, "CallStatus": "completed"})

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, placed, failures


def api_call(base: str, token: str, out: list[str]) -> None:
    """Time one API call (GET /api/v1/events) and note its status and seconds."""
    started = time.monotonic()
    try:
        response = requests.get(
            f"{base}/api/v1/events", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        code = response.json().get("error", {}).get("code", "") if response.status_code >= 400 else ""
        out.append(f"{response.status_code} {code} in {time.monotonic() - started:.2f} s".replace("  ", " "))
    except requests.RequestException as exc:
        out.append(f"{type(exc).__name__} after {time.monotonic() - started:.2f} s")


def degraded_start(folder: Path) -> str:
    """Start ``serve`` with its Redis down and a saved phone state; describe what happened."""
    server = OwnedRedis(folder / "redis-degraded")
    server.folder.mkdir()
    server.start()
    store = Store(redis.Redis(port=server.port, decode_responses=True), PREFIX)
    live_announcement(store, NUMBER, {"en": "Shelters are open."}, {"type": "dial", "number": "+16175550100"})
    LastKnownState(folder / "instance-degraded" / "ivr-state.json").save(store)
    server.stop()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "CRISIS_KEY_PREFIX": PREFIX,
        "CRISIS_INSTANCE_PATH": str(folder / "instance-degraded"),
        "SECRET_KEY": "bench",
        "TWILIO_AUTH_TOKEN": TOKEN,
    }
    try:
        console = start_console(env, folder / "degraded.log", port)
    except RuntimeError as exc:
        return "refused to start: " + str(exc).splitlines()[-1][:120]
    try:
        latencies, placed, failures = asyncio.run(load(f"http://127.0.0.1:{port}", 4, 3.0))
        return (
            f"started; {placed} calls answered from the saved state, p99 "
            f"{percentile(latencies, 0.99) * 1000:.0f} ms, {len(failures)} failed"
        )
    finally:
        stop_console(console)


def main() -> None:
    """Run every phase and record the table."""
    if len(sys.argv) == 4 and sys.argv[1] == "--proxy":
        run_proxy(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--label", default="")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the logs' folder (printed).")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cc-phone-faults-"))
    (folder / "redis").mkdir()
    server = OwnedRedis(folder / "redis")
    server.start()
    proxy, proxy_port = start_proxy(server.port)
    url = f"redis://127.0.0.1:{proxy_port}/0"
    rows: list[list[str]] = []
    store = Store(redis.Redis(port=server.port, decode_responses=True), PREFIX)
    announcement_id = live_announcement(
        store, NUMBER, {"en": "Trash pickup is suspended."}, {"type": "enqueue", "queue": "agents"}
    )
    admin = Accounts(store).create_user("benchadmin", "admin", "correct horse battery", actor="bench")
    api_token = Accounts(store).create_token(admin.username, "bench", actor="bench")
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "CRISIS_KEY_PREFIX": PREFIX,
        "CRISIS_INSTANCE_PATH": str(folder / "instance"),
        "SECRET_KEY": "bench",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "CRISIS_SEED_CATALOGUE": "0",
    }
    console = start_console(env, folder / "server.log", port)
    base = f"http://127.0.0.1:{port}"
    total_placed = 0
    try:
        _latencies, total_placed, _failures = asyncio.run(load(base, args.concurrency, 1.0))  # warm up
        api_notes: list[str] = []

        def fault(name: str, start: bool) -> None:
            if name == "refused":
                server.start() if not start else server.stop()
            elif name == "paused":
                server.signal(signal.SIGSTOP if start else signal.SIGCONT)
                if start:
                    threading.Timer(0.5, api_call, (base, api_token, api_notes)).start()
            elif name == "slow":
                proxy.send_signal(signal.SIGUSR1)
            elif name == "killed and restarted":
                server.stop(kill=True) if start else server.start()

        for name in ("none", "refused", "paused", "slow", "killed and restarted"):
            timers = []
            if name != "none":
                timers = [
                    threading.Timer(1.0, fault, (name, True)),
                    threading.Timer(args.seconds - 2.0, fault, (name, False)),
                ]
                for timer in timers:
                    timer.start()
            began = time.monotonic()
            started_at: list[float] = []
            latencies, placed, failures = asyncio.run(load(base, args.concurrency, args.seconds, started_at))
            for timer in timers:
                timer.join()
            total_placed += placed
            slow = sum(1 for value in latencies if value > 1.0)
            # p50/p99 of the webhooks in flight while the fault lasted (all of them for "none")
            window = (began + 1.0, began + args.seconds - 2.0) if name != "none" else (0.0, float("inf"))
            during = [
                lat
                for at, lat in zip(started_at, latencies, strict=True)
                if at < window[1] and at + lat > window[0]
            ]
            rows.append(
                [
                    name,
                    f"{len(latencies):,} ({len(during):,} during)",
                    f"{percentile(during, 0.50) * 1000:.1f}",
                    f"{percentile(during, 0.99) * 1000:.1f}",
                    f"{max(latencies) * 1000:.0f}",
                    str(slow),
                    str(len(failures)) + (f" ({failures[0]})" if failures else ""),
                ]
            )
            time.sleep(1.0)
        counted = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                counted = store.announcements.stats(announcement_id)["calls"]
            except redis.RedisError:
                store.redis.connection_pool.disconnect()
            if counted >= total_placed:
                break
            time.sleep(0.25)
    finally:
        stop_console(console)
        proxy.terminate()
        server.stop()
    degraded = degraded_start(folder)
    label = f" ({args.label})" if args.label else ""
    notes = (
        f"Calls placed {total_placed:,}, counted in the announcement's statistics afterwards: {counted:,}. "
        f"API `GET /api/v1/events` during the pause: {api_notes[0] if api_notes else 'not measured'}. "
        f"`serve` started with Redis down: {degraded}. "
        f"One gevent `serve` process; Redis behind a TCP proxy process; {args.concurrency} callers "
        f"(aiohttp, one process); each phase {args.seconds:.0f} s with the fault from 1 s to "
        f"{args.seconds - 2:.0f} s; slow = {SLOW_SECONDS * 1000:.0f} ms added to each Redis answer; "
        "latencies are of every webhook (voice and status callback); p50/p99 of those in flight "
        "while the fault lasted, max and '> 1 s' of the whole phase. All on the machine's cores."
    )
    title = f"Phone webhooks under Redis faults{label}"
    command = "python -m bench.phone_faults " + " ".join(sys.argv[1:])
    header = ["fault", "webhooks", "p50 ms during", "p99 ms during", "max ms", "> 1 s", "failed"]
    if args.no_record:
        print(title, command, header, *rows, notes, sep="\n")
    else:
        record(title, command, header, rows, notes)
    if args.keep:
        print(f"logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
