"""Call counts taken while Redis is down survive the process: they are spooled on disk
(``instance/spool/calls.jsonl``) besides waiting in memory, and replayed once Redis is back
by whichever process runs on the instance folder, ``serve --only webhooks`` included; each
call is counted exactly once however many paths write it.

Each test owns its redis-server (append-only, fsync always) and stops it while signed voice
webhooks come in; the shared test server is used only by the replay unit tests, each with
its own key prefix.
"""

from __future__ import annotations

import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from crisis_console import clock
from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.sockets import realtime
from crisis_console.store import Store
from crisis_console.webhooks import call_counts
from crisis_console.webhooks.call_counts import calls_spool, outcome_record, replay_calls, started_record
from crisis_console.webhooks.voice import PHONE
from tests.conftest import TWILIO_TOKEN
from tests.helpers import TwilioSigner, live_announcement
from tests.servers import owned_redis

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
