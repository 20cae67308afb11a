"""Shared pieces of the benchmarks: a served console, percentiles, the results file."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from crisis_console.store import Store
from tests.servers import ROOT, free_port, redis_for_tests, start_console, stop_console

RESULTS = ROOT / "BENCHMARKS.md"


def percentile(values: list[float], share: float) -> float:
    """Return the ``share`` (0–1) percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(samples: list[float]) -> tuple[float, float, float]:
    """Return p50, p99 and max of samples given in seconds, in milliseconds."""
    return (percentile(samples, 0.50) * 1000, percentile(samples, 0.99) * 1000, max(samples) * 1000)


def rss_kib(pid: int) -> int:
    """Return the resident memory of a process in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds a process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def served_console() -> Iterator[tuple[str, Store, subprocess.Popen[bytes]]]:
    """Run ``python -m crisis_console serve`` on a free port with a private key prefix."""
    with redis_for_tests() as (url, _how):
        prefix = f"ccbench-{os.getpid()}"
        port = free_port()
        folder = tempfile.mkdtemp(prefix="cc-bench-")
        env = {
            **os.environ,
            "REDIS_URL": url,
            "CRISIS_KEY_PREFIX": prefix,
            "CRISIS_INSTANCE_PATH": folder,
            "SECRET_KEY": "bench",
            "CRISIS_OPEN311_POST_LIMIT": "1000000 per minute",
        }
        process = start_console(env, Path(folder) / "server.log", port)
        client = redis.Redis.from_url(url, decode_responses=True)
        store = Store(client, prefix)
        try:
            yield f"http://127.0.0.1:{port}", store, process
        finally:
            stop_console(process)
            store.delete_all()
            client.close()


def record(
    title: str,
    command: str,
    header: list[str],
    rows: list[list[str]],
    notes: str = "",
    *,
    dry_run: bool = False,
) -> None:
    """Print a table and append it to BENCHMARKS.md with the command and the machine (only print
    when ``dry_run``)."""
    lines = [
        f"## {title} — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Command: `{command}` · machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    if notes:
        lines += [notes, ""]
    text = "\n".join(lines)
    print(text)
    if dry_run:
        return
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmarks\n\nEach section is appended by the command it names.\n\n")
    with RESULTS.open("a") as handle:
        handle.write(text + "\n")


def wrk_post(
    url: str, body: str, headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[float, ...]:
    """Load ``url`` with wrk (C, two threads, keep-alive) POSTing ``body``; return
    (requests/s, p50 ms, p99 ms, max ms). Any non-2xx answer is an error."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    base = ["wrk", "-t2", f"-c{concurrency}", "--latency", "-s", str(script)]
    subprocess.run([*base, "-d1s", url], capture_output=True, check=True)  # warm up
    output = subprocess.run(
        [*base, f"-d{int(seconds)}s", url], capture_output=True, text=True, check=True
    ).stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if failed:
        raise RuntimeError(f"{failed.group(1)} failed requests:\n{output}")

    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    def percentile_ms(label: str) -> float:
        return ms(*re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups())  # type: ignore[union-attr]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    worst = ms(*re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", output).groups())  # type: ignore[union-attr]
    return rate, percentile_ms("50%"), percentile_ms("99%"), worst
