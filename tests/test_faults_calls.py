"""Call counts taken while Redis is down survive the process: they are spooled on disk
(``instance/spool/calls.jsonl``) besides waiting in memory, and replayed once Redis is back
by whichever process runs on the instance folder, ``serve --only webhooks`` included; each
call is counted exactly once however many paths write it.

Each test owns its redis-server (append-only, fsync always) and stops it while signed voice
webhooks come in; the shared test server is used only by the replay unit tests, each with
its own key prefix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import requests
from twilio.request_validator import RequestValidator

from crisis_console import clock
from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.services.categories import Categories
from crisis_console.services.ivr_state import LastKnownState
from crisis_console.sockets import realtime
from crisis_console.store import Store
from crisis_console.webhooks import call_counts
from crisis_console.webhooks.call_counts import calls_spool, outcome_record, replay_calls, started_record
from crisis_console.webhooks.sms import sms_spool
from crisis_console.webhooks.voice import PHONE
from tests.conftest import TWILIO_TOKEN
from tests.helpers import TwilioSigner, live_announcement
from tests.servers import ROOT, OwnedRedis, free_port, owned_redis, start_console

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server it owns")

LINE = "+16175550311"
MESSAGES = {"en": "Shelters are open at every school.", "es": "Los refugios están abiertos."}
ROUTE = {"type": "dial", "number": "+16175550100"}
#: Failure guards, never measures: nothing here waits them out.
ANSWER_GUARD = 2.0
GUARD = 30.0


def wait_until(condition: Callable[[], bool], what: str, seconds: float = GUARD) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds`` (a guard)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stats_of(url: str, prefix: str, announcement_id: int) -> dict[str, int]:
    """Read an announcement's statistics through a client of the test's own ({} if unreachable)."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)
    try:
        return Store(client, prefix).announcements.stats(announcement_id)
    except redis.RedisError:
        return {}
    finally:
        client.close()


def verbs(body: bytes) -> list[str]:
    """Return the top-level TwiML verbs of an answer (it must parse as a <Response>)."""
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return [child.tag for child in root]


def counted(records: list[dict]) -> list[tuple[str, str, str]]:
    """Return (kind, call SID, outcome) of spooled count records."""
    return [(r["kind"], r["call_sid"], r["outcome"]) for r in records]


# --- in one process ---------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's instance folder."""
    folder = tmp_path / "instance"
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(folder))
    return folder


def test_counts_taken_during_an_outage_are_on_disk_and_replayed_once(tmp_path, instance, monkeypatch):
    """With Redis stopped every count is spooled beside the in-memory backlog; replay counts
    each call once, again when replayed twice over, and when the backlog writes them too."""
    refreshed: list[int] = []
    monkeypatch.setattr(realtime, "announcement_stats_soon", lambda _store, aid: refreshed.append(aid))
    with owned_redis(tmp_path / "redis") as server:
        prefix = "durable"
        # The breaker stays open for the whole test: the in-memory backlog cannot write
        # anything until the test says, as if this process had died.
        app = create_app(
            TestConfig(
                REDIS_URL=server.url,
                CRISIS_KEY_PREFIX=prefix,
                TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
                PHONE_BREAKER_SECONDS=3600,
            )
        )
        store = app.extensions[STORE_EXTENSION]
        announcement_id = live_announcement(store, LINE, MESSAGES, ROUTE)
        phone = app.extensions[PHONE]
        twilio = TwilioSigner(app.test_client(), TWILIO_TOKEN)
        params = {"From": "+16175550123", "To": LINE}
        assert verbs(twilio.post("/twilio/voice", {**params, "CallSid": "CA-before"}).get_data()) == [
            "Gather",
            "Redirect",
        ]
        assert not calls_spool(instance).has_waiting(), "a count written at once was spooled"

        server.stop()
        for number in range(4):  # heard, then hung up
            call = {**params, "CallSid": f"CA-{number}"}
            assert verbs(twilio.post("/twilio/voice", call).get_data()) == ["Gather", "Redirect"]
            ended = twilio.post("/twilio/voice/status", {**call, "CallStatus": "completed"})
            assert ended.status_code == 200
        call = {**params, "CallSid": "CA-routed"}  # heard, went on to an agent, then ended
        assert verbs(twilio.post("/twilio/voice", call).get_data()) == ["Gather", "Redirect"]
        menu = twilio.post(f"/twilio/voice/menu?announcement={announcement_id}&lang=en&next=1", call)
        assert verbs(menu.get_data()) == ["Dial"]
        twilio.post("/twilio/voice/status", {**call, "CallStatus": "completed"})
        assert len(phone.counts) == 11, "the counts do not wait in memory"

        wait_until(phone.spool.idle, "the spool writer to finish")
        waiting = calls_spool(instance).waiting()
        expected = [
            record
            for number in range(4)
            for record in (("started", f"CA-{number}", ""), ("outcome", f"CA-{number}", "deflected"))
        ] + [
            ("started", "CA-routed", ""),
            ("outcome", "CA-routed", "routed"),
            ("outcome", "CA-routed", "deflected"),
        ]
        assert counted(waiting) == expected
        assert {(r["announcement_id"], r["language"]) for r in waiting if r["kind"] == "started"} == {
            (announcement_id, "en")
        }
        assert phone.spool.written == 11 and phone.spool.lost == 0

        server.start()
        wait_until(lambda: store.redis.ping(), "the store to reconnect")
        claimed_copy = tmp_path / "calls-copy.jsonl"
        shutil.copy(calls_spool(instance).path, claimed_copy)
        refreshed.clear()  # the call before the outage refreshed them
        assert replay_calls(store, instance) == 11
        after = {"calls": 6, "heard": 6, "deflected": 4, "routed": 1}
        assert stats_of(server.url, prefix, announcement_id) == after
        assert refreshed == [announcement_id], "the statistics were not refreshed once"
        assert not calls_spool(instance).has_waiting()

        assert replay_calls(store, instance) == 0  # nothing left
        # As if a replayer had died before recording its progress: every line again.
        shutil.copy(claimed_copy, calls_spool(instance).path)
        assert replay_calls(store, instance) == 11
        assert stats_of(server.url, prefix, announcement_id) == after
        assert refreshed == [announcement_id]

        phone.breaker.open_seconds = 0.05  # the process lived on: its backlog writes them too
        wait_until(lambda: len(phone.counts) == 0, "the in-memory backlog to empty")
        assert phone.counts.replayed == 11
        assert stats_of(server.url, prefix, announcement_id) == after


def test_a_count_the_disk_cannot_take_still_waits_in_memory(tmp_path, instance):
    """A spool folder that cannot be written is logged; the call is answered at once and
    counted from memory once Redis is back."""
    with owned_redis(tmp_path / "redis") as server:
        app = create_app(
            TestConfig(
                REDIS_URL=server.url,
                CRISIS_KEY_PREFIX="nodisk",
                TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
                PHONE_BREAKER_SECONDS=0.3,
            )
        )
        announcement_id = live_announcement(app.extensions[STORE_EXTENSION], LINE, MESSAGES, ROUTE)
        instance.mkdir(parents=True, exist_ok=True)
        (instance / "spool").write_text("a file where the spool folder should be")
        twilio = TwilioSigner(app.test_client(), TWILIO_TOKEN)
        call = {"CallSid": "CA-warm", "From": "+16175550123", "To": LINE}
        twilio.post("/twilio/voice", call)
        server.stop()
        call = {**call, "CallSid": "CA-nodisk"}
        started = time.monotonic()
        answer = twilio.post("/twilio/voice", call)
        twilio.post("/twilio/voice/status", {**call, "CallStatus": "completed"})
        assert time.monotonic() - started < ANSWER_GUARD
        assert verbs(answer.get_data()) == ["Gather", "Redirect"]
        phone = app.extensions[PHONE]
        wait_until(phone.spool.idle, "the spool writer to give up")
        assert phone.spool.lost == 2 and phone.spool.written == 0
        server.start()
        wait_until(
            lambda: stats_of(server.url, "nodisk", announcement_id).get("deflected") == 1,
            "the count kept in memory to be written",
        )
        assert stats_of(server.url, "nodisk", announcement_id) == {
            "calls": 2,
            "heard": 2,
            "deflected": 1,
            "routed": 0,
        }


def test_the_writer_commits_counts_of_many_callers_in_groups_each_callers_in_order(tmp_path):
    """Counts handed over by many threads at once are on disk when ``submit`` returns True,
    in fewer writes than counts, each caller's in the order it gave them; a disk that
    cannot be written makes ``submit`` say so."""
    writes: list[int] = []
    spool = calls_spool(tmp_path)
    append_many = spool.append_many
    spool.append_many = lambda records: writes.append(len(records)) or append_many(records)  # type: ignore[method-assign]
    writer = call_counts.CountWriter(spool, wait=GUARD)
    answers: list[bool] = []

    def caller(number: int) -> None:
        for step in ("deflected", "routed"):
            answers.append(writer.submit(outcome_record(f"CA-{number}", step)))

    threads = [threading.Thread(target=caller, args=(number,)) for number in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [True] * 100 and writer.written == 100 and writer.lost == 0
    assert sum(writes) == 100 and len(writes) < 100, writes
    lines = counted(spool.waiting())
    for number in range(50):
        mine = [outcome for _kind, sid, outcome in lines if sid == f"CA-{number}"]
        assert mine == ["deflected", "routed"]

    broken = call_counts.CountWriter(calls_spool(tmp_path / "not-a-folder"), wait=GUARD)
    (tmp_path / "not-a-folder").write_text("a file")
    assert broken.submit(outcome_record("CA-x", "routed")) is False
    assert broken.lost == 1


def test_an_outcome_spooled_before_its_start_is_counted_and_one_without_waits_then_is_dropped(
    store, tmp_path, monkeypatch
):
    """Two processes may commit a call's lines out of order: the outcome is applied after
    the start later in the same pass; an outcome whose start is unknown is put back for
    the next passes, and dropped once it has waited OUTCOME_PATIENCE."""
    monkeypatch.setattr(realtime, "announcement_stats_soon", lambda _store, _aid: None)
    announcement_id = live_announcement(store, LINE, MESSAGES, ROUTE)
    spool = calls_spool(tmp_path)
    spool.append(outcome_record("CA-late-start", "deflected"))
    spool.append(started_record("CA-late-start", announcement_id, 1, "en"))
    spool.append(outcome_record("CA-never-started", "routed"))
    assert replay_calls(store, tmp_path) == 3
    assert store.announcements.stats(announcement_id) == {"calls": 1, "heard": 1, "deflected": 1, "routed": 0}
    # Both outcomes were put back before their lines were done (a crash loses neither); the
    # one whose start came later in the pass is a repeat next time, counted once.
    assert counted(spool.waiting()) == [
        ("outcome", "CA-late-start", "deflected"),
        ("outcome", "CA-never-started", "routed"),
    ]
    assert replay_calls(store, tmp_path) == 2
    assert store.announcements.stats(announcement_id) == {"calls": 1, "heard": 1, "deflected": 1, "routed": 0}
    assert counted(spool.waiting()) == [("outcome", "CA-never-started", "routed")]  # still unknown: kept
    later = clock.now() + timedelta(seconds=call_counts.OUTCOME_PATIENCE + 1)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert replay_calls(store, tmp_path) == 1
    assert spool.waiting() == [] and not spool.has_waiting()
    assert store.announcements.stats(announcement_id)["routed"] == 0


def test_the_webhooks_replayer_touches_redis_only_when_a_spool_holds_something(
    redis_url, prefix, instance, monkeypatch
):
    """A look at empty spools is a look at the file system; once a text and a call count
    wait, one look replays both (the same pass as the scheduler's)."""
    from crisis_console import scheduler
    from crisis_console.app import create_webhooks_app
    from crisis_console.serving import SpoolReplayer

    app = create_webhooks_app(
        TestConfig(REDIS_URL=redis_url, CRISIS_KEY_PREFIX=prefix, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    )
    store = app.extensions[STORE_EXTENSION]
    announcement_id = live_announcement(store, LINE, MESSAGES, ROUTE)
    Categories(store).create({"code": "snow_plowing", "name": "Snow plowing", "aliases": ["plow"]})
    replayer = SpoolReplayer(app)
    passes: list[str] = []
    real_pass = scheduler.replay_spooled
    monkeypatch.setattr(scheduler, "replay_spooled", lambda *args: passes.append("pass") or real_pass(*args))

    assert replayer.replay_once() == 0 and passes == []
    sms_spool(instance).append(
        {
            "v": 1,
            "id": "sms:SMlook",
            "from": "+16175550101",
            "to": LINE,
            "body": "plow 02124",
            "received_at": "",
        }
    )
    calls_spool(instance).append(started_record("CA-look", announcement_id, 1, "en"))
    assert replayer.replay_once() == 2 and passes == ["pass"]
    assert store.redis.xlen(store.keys.complaints()) == 1
    assert store.announcements.stats(announcement_id)["calls"] == 1
    assert replayer.replay_once() == 0 and passes == ["pass"]


# --- real processes ---------------------------------------------------------------------


def sign(url: str, params: dict[str, str]) -> dict[str, str]:
    """Return the X-Twilio-Signature header Twilio would send for ``url``."""
    return {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, params)}


def post_signed(url: str, params: dict[str, str]) -> requests.Response:
    """POST a webhook as Twilio would (signed), within the answer guard."""
    return requests.post(url, data=params, headers=sign(url, params), timeout=ANSWER_GUARD)


def environment(server: OwnedRedis, prefix: str, instance: Path) -> dict[str, str]:
    """The environment of a console process on the owned server and instance folder."""
    return {
        **os.environ,
        "REDIS_URL": server.url,
        "CRISIS_KEY_PREFIX": prefix,
        "CRISIS_INSTANCE_PATH": str(instance),
        "SECRET_KEY": "calls-fault-test-secret",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PYTHONUNBUFFERED": "1",
    }


def start_webhooks(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``serve --only webhooks`` (two workers, so two replayers) and wait until it answers."""
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "crisis_console", "serve", "--only", "webhooks"),
                *("--port", str(port), "--workers", "2", "--threads", "2"),
            ],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + GUARD
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the webhooks service exited ({process.returncode}):\n{log.read_text()}")
        try:
            if requests.post(f"http://127.0.0.1:{port}/twilio/voice", timeout=1).status_code == 403:
                return process
        except requests.RequestException:  # not listening yet, or a worker still loading the app
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the webhooks service did not start:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Console processes a test starts; each is killed afterwards whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.mark.parametrize("fresh", ["serve --only webhooks", "serve"])
def test_counts_of_a_process_killed_during_an_outage_are_replayed_by_the_next_one(fresh, tmp_path, processes):
    """``serve`` takes N calls while Redis is down and is killed (-9); once Redis is back a
    fresh process on the same instance folder counts exactly those N calls, once each."""
    calls = 5
    instance, prefix = tmp_path / "instance", "killed"
    with owned_redis(tmp_path / "redis") as server:
        store = Store(redis.Redis.from_url(server.url, decode_responses=True), prefix)
        announcement_id = live_announcement(store, LINE, MESSAGES, ROUTE)
        LastKnownState(instance / "ivr-state.json").save(store)  # as the console does on each change
        store.redis.close()
        env = environment(server, prefix, instance)
        port = free_port()
        processes.append(start_console(env, tmp_path / "first.log", port))
        base = f"http://127.0.0.1:{port}/twilio"

        server.stop()
        for number in range(calls):
            call = {"CallSid": f"CA-killed-{number}", "From": "+16175550123", "To": LINE}
            answer = post_signed(f"{base}/voice", call)
            assert answer.status_code == 200 and verbs(answer.content) == ["Gather", "Redirect"]
            assert post_signed(f"{base}/voice/status", {**call, "CallStatus": "completed"}).ok
        spool = calls_spool(instance)
        wait_until(lambda: len(spool.waiting()) == 2 * calls, "every count to be on disk")
        processes[0].kill()  # kill -9: its in-memory backlog dies with it
        processes[0].wait(10)

        server.start()
        assert stats_of(server.url, prefix, announcement_id)["calls"] == 0, (
            "a count reached Redis before the kill"
        )
        port = free_port()
        if fresh == "serve":
            processes.append(start_console(env, tmp_path / "fresh.log", port))
        else:
            processes.append(start_webhooks(env, tmp_path / "fresh.log", port))
        wait_until(
            lambda: stats_of(server.url, prefix, announcement_id).get("deflected") == calls,
            f"the {calls} spooled calls to be counted by `{fresh}`",
        )
        wait_until(lambda: not spool.has_waiting(), "the spool to be done")
        assert stats_of(server.url, prefix, announcement_id) == {
            "calls": calls,
            "heard": calls,
            "deflected": calls,
            "routed": 0,
        }


def test_the_webhooks_service_replays_a_text_spooled_while_redis_was_down(tmp_path, processes):
    """``serve --only webhooks`` spools a text (sent twice, as Twilio retries) while Redis is
    down, and stores it as one complaint by itself once Redis is back."""
    instance, prefix = tmp_path / "instance", "smsonly"
    with owned_redis(tmp_path / "redis") as server:
        store = Store(redis.Redis.from_url(server.url, decode_responses=True), prefix)
        Categories(store).create({"code": "snow_plowing", "name": "Snow plowing", "aliases": ["plow"]})
        port = free_port()
        processes.append(
            start_webhooks(environment(server, prefix, instance), tmp_path / "webhooks.log", port)
        )
        url = f"http://127.0.0.1:{port}/twilio/sms"

        server.stop()
        text = {
            "From": "+16175550101",
            "To": LINE,
            "Body": "PLOW 02124 street not plowed",
            "MessageSid": "SMone",
        }
        for _ in range(2):
            answer = post_signed(url, text)
            assert answer.status_code == 200
            assert "We received your message" in answer.text
        assert [r["id"] for r in sms_spool(instance).waiting()] == ["sms:SMone", "sms:SMone"]

        server.start()
        complaints = store.keys.complaints()
        wait_until(lambda: store.redis.xlen(complaints) >= 1, "the spooled text to be stored")
        wait_until(lambda: not sms_spool(instance).has_waiting(), "the spool to be done")
        assert store.redis.xlen(complaints) == 1
        stored = store.redis.xrange(complaints)[0][1]
        assert (
            stored["category"] == "snow_plowing" and stored["zip"] == "02124" and stored["channel"] == "sms"
        )
        store.redis.close()
