"""Spike detector on the Boston 311 file: when each storm is flagged, and how often it cries wolf.

Loads the Boston file at its own times into a private key prefix, then asks the detector what
it saw every ``--step`` minutes from 22 January (three weeks of history) to 31 March, exactly
as ``/trends/spikes?at=…`` does. For each snow storm it prints the onset, the first flag from
then on and the delay, and it counts the flagged category-days outside the winter-storm
categories; the table is appended to BENCHMARKS.md.

A storm's onset is read off the file, not chosen by hand: the first winter-storm complaint
that starts an hour holding at least five of them (fewer is noise to any count-based
detector, ours included), from the storm's first day, or from the start of its snow emergency
when the complaints before it were only that snowy month's everyday level.

    python -m bench.detector [--step 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis

from bench.common import record
from crisis_console import clock
from crisis_console.replay import BOSTON_HAZARDS, add_missing_categories, read_records, replay
from crisis_console.services import trends
from crisis_console.services.categories import slug
from crisis_console.store import Store
from tests.servers import ROOT, redis_for_tests

BOSTON = (
    ROOT.parent / "shared" / "data" / "boston311_2015" / "boston311_2015_window_2015-01-01_to_2015-03-31.csv"
)
LOCAL = ZoneInfo("America/New_York")
#: Each storm: a label and the span (Boston time) in which to look for its onset and first flag.
#: Snow emergency times as the Boston Police Department announced them.
STORMS = [
    ("26–28 Jan blizzard (snow emergency from 26 Jan 18:00)", "2015-01-26T00:00", "2015-01-29T00:00"),
    ("1–2 Feb storm", "2015-02-01T00:00", "2015-02-03T00:00"),
    ("8–10 Feb storm", "2015-02-08T00:00", "2015-02-11T00:00"),
    ("14–15 Feb blizzard (snow emergency from 14 Feb 22:00)", "2015-02-14T22:00", "2015-02-16T00:00"),
]
#: Complaints within an hour that make an onset.
ONSET_COUNT = 5
SNOW = {slug(name) for name, hazards in BOSTON_HAZARDS.items() if "winter_storm" in hazards}


def local(text: str) -> datetime:
    """Return a Boston wall-clock time as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=LOCAL).astimezone(clock.UTC)


def onset(times: list[datetime], start: datetime, end: datetime) -> datetime | None:
    """Return the first complaint time in [start, end) that starts an hour of ``ONSET_COUNT``."""
    inside = [t for t in sorted(times) if start <= t < end]
    for i, first in enumerate(inside[: len(inside) - ONSET_COUNT + 1]):
        if inside[i + ONSET_COUNT - 1] < first + timedelta(hours=1):
            return first
    return None


def sweep(store: Store, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, dict]]:
    """Return (instant, spike) for every spike the detector reports at each step."""
    found = []
    moment = start
    while moment < end:
        for spike in trends.spikes_at(store, window="60m", at=clock.iso(moment))["spikes"]:
            found.append((moment, spike))
        moment += step
    return found


def is_snow(spike: dict) -> bool:
    """Return whether a spike is about the winter storm (its hazard or a snow category)."""
    return spike.get("hazard") == "winter_storm" or spike["category"] in SNOW


def main() -> None:
    """Load, sweep, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=5, help="minutes between two looks (default 5)")
    args = parser.parse_args()
    with redis_for_tests() as (url, _how):
        client = redis.Redis.from_url(url, decode_responses=True)
        store = Store(client, f"ccbench-detector-{os.getpid()}")
        try:
            records, _ = read_records(BOSTON, None)
            snow_times = [clock.parse_iso(r["occurred_at"]) for r in records if slug(r["category"]) in SNOW]
            add_missing_categories(store, records)
            replay(store, records)
            began = time.perf_counter()
            found = sweep(
                store, local("2015-01-22T00:00"), local("2015-03-31T23:59"), timedelta(minutes=args.step)
            )
            looks = int(
                (local("2015-03-31T23:59") - local("2015-01-22T00:00")) / timedelta(minutes=args.step)
            )
            seconds = time.perf_counter() - began
        finally:
            store.delete_all()
            client.close()
    rows = []
    for label, start, end in STORMS:
        began_at = onset(snow_times, local(start), local(end))
        if began_at is None:
            rows.append([label, "none", "—", "—", "—"])
            continue
        hits = [(m, s) for m, s in found if began_at <= m < local(end) and is_snow(s)]
        row = [label, f"{began_at.astimezone(LOCAL):%m-%d %H:%M}"]
        if hits:
            moment, spike = hits[0]
            what = f"{spike.get('hazard') or spike['category']}: {spike['observed']} vs {spike['expected']}"
            delay = f"{(moment - began_at) / timedelta(minutes=1):.0f} min"
            rows.append([*row, f"{moment.astimezone(LOCAL):%m-%d %H:%M}", delay, what])
        else:
            rows.append([*row, "not flagged", "—", "—"])
    other: dict[str, set[str]] = defaultdict(set)
    for moment, spike in found:
        if not is_snow(spike):
            other[spike.get("hazard") or "categories"].add(
                f"{moment.astimezone(LOCAL):%m-%d} {spike['category']}"
            )
    notes = (
        f"{looks:,} looks every {args.step} min from 22 Jan to 31 Mar, {seconds / looks * 1000:.1f} ms each. "
        f"Onsets and flags in Boston time. Outside the winter storm, flagged category-days: "
        f"{len(other.get('categories', ()))} by single categories; by hazard groups: "
        + (
            ", ".join(
                f"{hazard} {len(days)}" for hazard, days in sorted(other.items()) if hazard != "categories"
            )
            or "none"
        )
        + "."
    )
    record(
        "Spike detector on the Boston 311 file",
        f"python -m bench.detector --step {args.step}",
        ["storm", "onset", "first flag", "delay", "flagged as"],
        rows,
        notes,
    )


if __name__ == "__main__":
    main()
