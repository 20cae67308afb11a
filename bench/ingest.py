"""Complaint intake and trend-query speed, end to end through the served console.

Single complaints over ``POST /api/v1/complaints`` and Open311's ``POST requests.json``
(wrk, 16 connections), batches of
1,000 (four client threads), the Boston 311 file replayed as fast as possible through the
same intake, and ``GET /api/v1/trends`` over 1 h, 24 h and 90 days with that file loaded.
Appends the table to BENCHMARKS.md.

    .venv/bin/python -m bench.ingest [--seconds 5] [--batches 40]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import threading
import time
from urllib.parse import urlencode

import requests

from bench.common import ROOT, record, served_console, wrk_post
from crisis_console import replay
from crisis_console.services.accounts import Accounts
from crisis_console.services.categories import Categories

BOSTON = (
    ROOT.parent / "shared" / "data" / "boston311_2015" / "boston311_2015_window_2015-01-01_to_2015-03-31.csv"
)


def batched(base: str, token: str, batches: int, threads: int = 4) -> float:
    """Post ``batches`` batches of 1,000 complaints from ``threads`` threads; return complaints/s."""
    body = {
        "complaints": [
            {"category": "plow", "zip": f"021{i % 30:02d}", "text": "Street not plowed"} for i in range(1000)
        ]
    }
    per_thread = batches // threads
    errors: list[str] = []

    def work() -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        for _ in range(per_thread):
            response = http.post(f"{base}/api/v1/complaints", json=body)
            if response.status_code != 201 or response.json()["accepted"] != 1000:
                errors.append(response.text[:200])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(errors[0])
    return per_thread * threads * 1000 / elapsed


def query_ms(http: requests.Session, url: str, runs: int = 30) -> tuple[float, float]:
    """Return the median and the slowest of ``runs`` GETs, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        http.get(url).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    """Run every measurement and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    rows: list[list[str]] = []
    with served_console() as (base, store, _server):
        Categories(store).create(
            {
                "code": "snow_plowing",
                "name": "Request for Snow Plowing",
                "aliases": ["plow"],
                "open311_code": "snow-plowing",
            }
        )
        agent = Accounts(store).create_user("benchagent", "agent", "benchmark password").username
        token = Accounts(store).create_token(agent)
        open311_key = Accounts(store).create_token(agent, "bench Open311", scope="open311")
        single = json.dumps({"category": "plow", "zip": "02124", "text": "Street not plowed"})
        if shutil.which("wrk"):
            rate, p50, p99, _worst = wrk_post(
                f"{base}/api/v1/complaints",
                single,
                {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                16,
                args.seconds,
            )
            rows.append(
                [
                    "POST /complaints, one per request (wrk, 16 connections)",
                    f"{rate:,.0f} req/s",
                    f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                ]
            )
            form = urlencode(
                {
                    "api_key": open311_key,
                    "service_code": "snow-plowing",
                    "lat": "42.3001",
                    "long": "-71.0589",
                    "description": "Street not plowed",
                }
            )
            rate, p50, p99, _worst = wrk_post(
                f"{base}/open311/v2/requests.json",
                form,
                {"Content-Type": "application/x-www-form-urlencoded"},
                16,
                args.seconds,
            )
            rows.append(
                [
                    "Open311 POST requests.json, one per request (wrk, 16 connections)",
                    f"{rate:,.0f} req/s",
                    f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                ]
            )
        per_second = batched(base, token, args.batches)
        rows.append(
            [
                f"POST /complaints, batches of 1,000 ({args.batches} batches, 4 threads)",
                f"{per_second:,.0f} complaints/s",
                "end to end over HTTP",
            ]
        )
        if BOSTON.exists():
            records, _boston = replay.read_records(BOSTON, None)
            replay.add_missing_categories(store, records)
            start = time.perf_counter()
            summary = replay.replay(store, records)
            elapsed = time.perf_counter() - start
            rows.append(
                [
                    f"replay of the Boston file ({summary.accepted:,} rows, as fast as possible)",
                    f"{summary.accepted / elapsed:,.0f} complaints/s",
                    f"{elapsed:.2f} s",
                ]
            )
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {token}"
            for window, bucket in (("60m", "1m"), ("24h", "1h"), ("90d", "1d")):
                median, worst = query_ms(
                    http, f"{base}/api/v1/trends?window={window}&bucket={bucket}&at=2015-02-10T18:00:00Z"
                )
                rows.append(
                    [
                        f"GET /trends?window={window}&bucket={bucket} (Boston data loaded)",
                        f"median {median:.1f} ms",
                        f"max {worst:.1f} ms",
                    ]
                )
            median, worst = query_ms(http, f"{base}/api/v1/trends/spikes?window=60m&at=2015-01-27T12:59:00Z")
            rows.append(
                [
                    "GET /trends/spikes?window=60m (trailing-week and 3-week same-weekday baselines)",
                    f"median {median:.1f} ms",
                    f"max {worst:.1f} ms",
                ]
            )
    record(
        "Complaint intake and trend queries (one gevent web process)",
        f"python -m bench.ingest --seconds {args.seconds} --batches {args.batches}",
        ["what", "rate / time", "detail"],
        rows,
        "Client, console and Redis share the machine's 2 cores. Each complaint is one Lua call (stream + 8 "
        "counters); a batch is one pipelined round trip.",
    )


if __name__ == "__main__":
    main()
