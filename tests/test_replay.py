"""Replays shifted to today: history at once, the rest live, and the same spikes as back then."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from crisis_console import clock, replay, scheduler
from crisis_console.services import trends
from crisis_console.store import Store

BOSTON = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "boston311_2015"
    / "boston311_2015_window_2015-01-01_to_2015-03-31.csv"
)
NOW = datetime(2026, 11, 24, 10, 37, 20, tzinfo=clock.UTC)


def records_at(*times: str) -> list[dict[str, str]]:
    return [{"category": "plow", "occurred_at": t} for t in times]


def test_live_from_moves_that_instant_to_this_hour_by_whole_hours():
    """Minutes and the time of day's buckets are kept; what came before is the past."""
    records = records_at("2015-01-27T11:10:00Z", "2015-01-27T12:05:30Z", "2015-01-27T12:50:00Z")
    replay.shift_to_now(records, NOW, live_from=clock.parse_iso("2015-01-27T12:30:00Z"))
    assert [r["occurred_at"] for r in records] == [
        "2026-11-24T09:10:00.000Z",
        "2026-11-24T10:05:30.000Z",
        "2026-11-24T10:50:00.000Z",
    ]


def test_shift_to_now_without_live_from():
    """As fast as possible, the last record is now; at a speed, the first is now and time is compressed."""
    records = records_at("2015-01-27T11:00:00Z", "2015-01-27T12:00:00Z")
    replay.shift_to_now(records, NOW)
    assert records[-1]["occurred_at"] == clock.iso(NOW)
    records = records_at("2015-01-27T11:00:00Z", "2015-01-27T12:00:00Z")
    replay.shift_to_now(records, NOW, speed=60)
    assert [r["occurred_at"] for r in records] == [clock.iso(NOW), clock.iso(NOW + timedelta(minutes=1))]


def test_records_on_the_clock_are_sent_when_their_time_comes():
    """The past goes at once in one batch; each later record waits for the clock."""
    fake = {"now": NOW}
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 1))
        fake["now"] += timedelta(seconds=seconds)

    records = records_at(
        clock.iso(NOW - timedelta(hours=2)),
        clock.iso(NOW - timedelta(minutes=1)),
        clock.iso(NOW + timedelta(seconds=30)),
        clock.iso(NOW + timedelta(seconds=90)),
    )
    sent = list(replay.batches(records, 1, sleep, on_the_clock=True, now=lambda: fake["now"]))
    assert [len(batch) for batch in sent] == [2, 1, 1]
    assert waits == [30.0, 60.0]


@pytest.mark.skipif(not BOSTON.exists(), reason="shared/data is not beside the checkout")
def test_a_live_replay_raises_the_spikes_seen_at_the_time(store, redis_url, prefix):
    """The Boston file shifted with --live-from: the worker's pass at the shifted instant raises
    the spikes /trends/spikes?at= shows for the original instant (same counts, same baselines)."""
    original = Store(store.redis, f"{prefix}-original")
    records, _ = replay.read_records(BOSTON, None)
    replay.add_missing_categories(original, records)
    replay.replay(original, records)
    live_from = clock.parse_iso("2015-01-27T12:00:00Z")
    shifted_records, _ = replay.read_records(BOSTON, None)
    replay.add_missing_categories(store, shifted_records)
    replay.shift_to_now(shifted_records, NOW, live_from=live_from)
    replay.replay(store, shifted_records)
    offset = datetime(2026, 11, 24, 10, tzinfo=clock.UTC) - live_from

    def essentials(spikes: list[dict]) -> list[tuple]:
        return [(s["category"], s.get("zip"), s["observed"], s["expected"], s["score"]) for s in spikes]

    try:
        for at in ("2015-01-27T12:59:00Z", "2015-01-27T15:30:00Z", "2015-01-20T15:00:00Z"):
            then = essentials(trends.spikes_at(original, at=at)["spikes"])
            moved = clock.iso(clock.parse_iso(at) + offset)
            assert essentials(trends.spikes_at(store, at=moved)["spikes"]) == then, at
        raised: list[dict] = []
        scheduler.run_pass(store, now=clock.parse_iso("2015-01-27T12:59:00Z") + offset, spiked=raised.append)
        expected = essentials(trends.spikes_at(original, at="2015-01-27T12:59:00Z")["spikes"])
        assert expected and essentials(raised) == expected
    finally:
        original.delete_all()


@pytest.mark.served
def test_a_replay_tells_open_dashboards_through_the_message_queue(served_app, runner, monkeypatch, tmp_path):
    """``replay`` in another process: a stakeholder's dashboard socket hears trends.update."""
    import threading

    from crisis_console.cli import cli
    from crisis_console.roles import Role
    from crisis_console.services.categories import Categories
    from crisis_console.sockets import names
    from tests.test_sockets import connect

    stakeholder = served_app.make_user(Role.STAKEHOLDER)
    heard = threading.Event()
    client = connect(served_app, names.DASHBOARD, token=served_app.token_for(stakeholder))
    client.on(names.TRENDS_UPDATE, lambda message: heard.set(), namespace=names.DASHBOARD)
    code = f"replayed_{stakeholder.id}"
    Categories(served_app.store).create({"code": code, "name": f"Replayed {stakeholder.id}"})
    path = tmp_path / "calls.csv"
    path.write_text(f"when,type\n2015-01-27T12:00:00Z,{code}\n")
    monkeypatch.setenv("CRISIS_KEY_PREFIX", served_app.store.keys.prefix)
    try:
        result = runner.invoke(
            cli, ["replay", str(path), "--map", "when=occurred_at", "--map", "type=category"]
        )
        assert result.exit_code == 0 and "accepted 1" in result.output, result.output
        assert heard.wait(5)
    finally:
        client.disconnect()


@pytest.mark.served
def test_on_the_embedded_redis_replay_and_worker_reach_open_pages(tmp_path):
    """`make run`'s set-up (no REDIS_URL): `replay` and `worker` in other processes share the
    embedded Redis with `serve`, and open dashboards hear them through it: trends.update from
    the replay, spike.detected from whichever process finds the surge first."""
    import os
    import subprocess
    import sys
    import threading

    from crisis_console.sockets import names
    from crisis_console.store import connect as connect_redis
    from tests.servers import ROOT, free_port, start_console, stop_console
    from tests.test_sockets import connect

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(CRISIS_INSTANCE_PATH=str(tmp_path / "instance"), SECRET_KEY="embedded-test")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "crisis_console", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    port = free_port()
    console = start_console(env, tmp_path / "serve.log", port)
    worker = None
    try:
        cli("user", "add", "chief", "--role", "stakeholder", "--password", "chief-of-staff-2015")
        token = cli("token", "create", "chief").split()[-1]

        class Served:
            url = f"http://127.0.0.1:{port}"

        heard = {names.TRENDS_UPDATE: threading.Event(), names.SPIKE_DETECTED: threading.Event()}
        client = connect(Served, names.DASHBOARD, token=token)
        for event, flag in heard.items():
            client.on(event, lambda message, flag=flag: flag.set(), namespace=names.DASHBOARD)
        worker = subprocess.Popen(
            [sys.executable, "-m", "crisis_console", "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        now = clock.now()
        rows = "".join(f"{clock.iso(now - timedelta(seconds=s))},Downed wire,02124\n" for s in range(30))
        (tmp_path / "calls.csv").write_text("when,type,zip\n" + rows)
        out = cli(
            "replay",
            str(tmp_path / "calls.csv"),
            "--map",
            "when=occurred_at",
            "--map",
            "type=category",
            "--map",
            "zip=zip",
            "--add-categories",
        )
        assert "accepted 30" in out, out
        assert heard[names.TRENDS_UPDATE].wait(10)
        assert heard[names.SPIKE_DETECTED].wait(20)
        client.disconnect()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(10)
        stop_console(console)
        connect_redis(None, tmp_path / "instance").shutdown()
