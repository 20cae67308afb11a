"""Texts and Open311 requests while Redis is down lose nothing: texts are spooled and ingested
exactly once when it is back, however often or by how many replayers; Open311 says retry.

Each test owns a redis-server (append-only, in a temporary folder) that it stops and starts
again with its data; the shared test server is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from crisis_console import scheduler
from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.roles import Role
from crisis_console.services.accounts import Accounts
from crisis_console.services.categories import Categories
from crisis_console.services.sms_text import segments
from crisis_console.services.spool import Spool
from crisis_console.webhooks.sms import OPTED_OUT, replay_spool, replay_text, sms_spool
from tests.conftest import TWILIO_TOKEN
from tests.helpers import TwilioSigner
from tests.servers import ROOT, OwnedRedis, owned_redis
from tests.test_sms_replies import SUMMARY_EN, approved, declared

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server it owns")

NUMBER = "+16175550311"
PREFIX = "faults"
RECEIVED = "We received your message and will log it as soon as our system is back."
#: (from, body) of the texts sent during the outage: five reports and one STOP.
OUTAGE_TEXTS = [
    ("+16175550101", "PLOW 02124 street not plowed since Monday"),
    ("+16175550102", "No heat 02125 radiators cold"),
    ("+16175550103", "heat 02115"),
    ("+16175550104", "plow 02126 side street"),
    ("+16175550105", "something smells like gas on my block 02127"),  # names none: logged as other
    ("+16175550106", "STOP"),
]
STOPPED = "+16175550106"
GUARD = 10  # seconds: only ever a failure guard, never something a test waits out


@pytest.fixture
def owned(tmp_path: Path) -> Iterator[OwnedRedis]:
    """A redis-server this test owns, running."""
    with owned_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The instance folder of the app (and of the scheduler's replay step)."""
    folder = tmp_path / "instance"
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(folder))
    return folder


@pytest.fixture
def console(owned: OwnedRedis, instance: Path):
    """The app on the owned server, with a catalogue and an approved key message, and a first
    INFO text answered (so the process knows the key message when Redis goes)."""
    app = create_app(
        TestConfig(REDIS_URL=owned.url, CRISIS_KEY_PREFIX=PREFIX, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    )
    store = app.extensions[STORE_EXTENSION]
    categories = Categories(store)
    categories.create({"code": "snow_plowing", "name": "Snow plowing", "aliases": ["plow"]})
    categories.create({"code": "no_heat", "name": "No heat", "aliases": ["heat"]})
    categories.create({"code": "other", "name": "Other"})
    approved(store, declared(store).id, SUMMARY_EN)
    twilio = TwilioSigner(app.test_client(), TWILIO_TOKEN)
    assert send(twilio, "+16175550100", "INFO", "SMprime").startswith(SUMMARY_EN)
    return app, store, twilio


def send(twilio: TwilioSigner, sender: str, body: str, sid: str) -> str:
    """Text the console as Twilio would; return the reply (asserting it is one TwiML message)."""
    response = twilio.post("/twilio/sms", {"From": sender, "To": NUMBER, "Body": body, "MessageSid": sid})
    assert response.status_code == 200 and response.mimetype == "text/xml", response.get_data(as_text=True)
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response" and [child.tag for child in root] == ["Message"]
    return root[0].text or ""


def texts_during_outage(owned: OwnedRedis, twilio: TwilioSigner, instance: Path) -> list[dict]:
    """Stop Redis, send the outage texts, check every answer, start Redis again; return the spool."""
    owned.stop()
    for index, (sender, body) in enumerate(OUTAGE_TEXTS):
        answer = send(twilio, sender, body, f"SMout{index}")
        if body == "STOP":
            assert answer == OPTED_OUT
        else:
            assert answer.startswith(RECEIVED) and SUMMARY_EN in answer, answer
            assert answer.endswith("For emergencies call 911.") and segments(answer) <= 2
    waiting = sms_spool(instance).waiting()
    assert [(r["from"], r["body"], r["id"]) for r in waiting] == [
        (sender, body, f"sms:SMout{index}") for index, (sender, body) in enumerate(OUTAGE_TEXTS)
    ]
    owned.start()
    return waiting


def wait_until_reachable(store) -> None:
    """Wait until the store's own client answers again after the restart (an explicit signal)."""
    deadline = time.monotonic() + GUARD
    while True:
        try:
            store.redis.ping()
            return
        except redis.RedisError:
            assert time.monotonic() < deadline, "Redis did not come back"
            time.sleep(0.02)


def assert_ingested_once(store, instance: Path, waiting: list[dict]) -> None:
    """Exactly the five outage reports are stored, once each, at the time they were texted;
    the STOP is recorded; nothing is left in the spool folder."""
    complaints = sorted(store.complaints.recent(100), key=lambda c: c["text"])
    reports = [r for r in waiting if r["body"] != "STOP"]
    assert len(complaints) == len(OUTAGE_TEXTS) - 1
    by_text = {c["text"]: c for c in complaints}
    assert by_text["02124 street not plowed since Monday"]["category"] == "snow_plowing"
    assert by_text["heat 02115"]["category"] == "no_heat"
    assert by_text["something smells like gas on my block 02127"]["category"] == "other"
    assert sorted(c["occurred_at"] for c in complaints) == sorted(r["received_at"] for r in reports)
    assert {c["source"] for c in complaints} == {f"sms:{r['from'][-4:]}" for r in reports}
    assert store.sms.opted_out(STOPPED)
    assert sms_spool(instance).waiting() == []
    assert sorted(os.listdir(instance / "spool")) == []


def test_texts_sent_while_redis_is_down_are_answered_and_ingested_once_it_is_back(console, owned, instance):
    """Every text gets a 200 TwiML "received" answer; once Redis is back the replay stores each
    report exactly once and records the STOP; replaying again changes nothing."""
    _app, store, twilio = console
    waiting = texts_during_outage(owned, twilio, instance)
    wait_until_reachable(store)
    assert replay_spool(store, instance) == len(OUTAGE_TEXTS)
    assert_ingested_once(store, instance, waiting)
    assert replay_spool(store, instance) == 0
    # Twilio sends a text again with its MessageSid (or a live answer failed after storing it).
    send(twilio, *OUTAGE_TEXTS[0], "SMout0")
    assert_ingested_once(store, instance, waiting)
    audit = [e for e in store.audit.read() if e.get("action") == "sms.opted_out"]
    assert len(audit) == 1


def test_the_scheduler_loop_replays_the_spool_when_redis_answers_again(console, owned, instance):
    """The loop's pass fails while Redis is down, and its next pass replays what was spooled."""
    _app, store, twilio = console
    owned.stop()
    send(twilio, *OUTAGE_TEXTS[0], "SMloop0")
    send(twilio, *OUTAGE_TEXTS[5], "SMloop5")
    passes = []

    class Done(Exception):
        """Ends the loop after its second pass."""

    def sleep(_seconds: float) -> None:
        passes.append(len(sms_spool(instance).waiting()))
        if len(passes) == 1:
            owned.start()
            wait_until_reachable(store)
            return
        raise Done

    with pytest.raises(Done):
        scheduler.loop(store, sleep)
    assert passes == [2, 0]  # nothing replayed while down, everything on the next pass
    assert store.complaints.length() == 1 and store.sms.opted_out(STOPPED)


def test_a_spool_replayed_twice_over_or_by_two_processes_at_once_stores_each_text_once(
    console, owned, instance
):
    """The same records twice in the spool (two processes replaying, or a resend), and two
    replayer processes started together: still one complaint per text."""
    _app, store, twilio = console
    waiting = texts_during_outage(owned, twilio, instance)
    for record in waiting:  # as if the texts had been spooled twice over
        sms_spool(instance).append(record)
    wait_until_reachable(store)
    replayers = [replayer_process(owned.url, instance) for _ in range(2)]
    handled = 0
    for process in replayers:
        out, err = process.communicate(timeout=GUARD * 3)
        assert process.returncode == 0, err
        handled += int(out.split()[-1])
    assert handled == 2 * len(OUTAGE_TEXTS)  # every line handed to one replayer or the other
    assert_ingested_once(store, instance, waiting)


def test_a_replay_that_dies_mid_way_resumes_and_stores_each_text_once(console, owned, instance):
    """A replayer killed right after storing its third record, before marking it done, leaves
    its place on disk; the next replay resumes there and stores nothing twice."""
    _app, store, twilio = console
    waiting = texts_during_outage(owned, twilio, instance)
    wait_until_reachable(store)
    crashed = replayer_process(owned.url, instance, die_after=3)
    _out, err = crashed.communicate(timeout=GUARD * 3)
    assert crashed.returncode == 9, err
    assert store.complaints.length() == 3  # the third stored, not marked done
    progress = list((instance / "spool").glob("*.progress"))
    assert len(progress) == 1 and int(progress[0].read_text()) > 0
    assert len(sms_spool(instance).waiting()) == len(OUTAGE_TEXTS) - 2  # the third is handed over again
    assert replay_spool(store, instance) == len(OUTAGE_TEXTS) - 2
    assert_ingested_once(store, instance, waiting)


def test_two_replayers_in_one_process_share_the_spool_without_waiting_on_each_other(console, owned, instance):
    """While one replayer holds a claimed file, another passes it by at once."""
    _app, store, twilio = console
    waiting = texts_during_outage(owned, twilio, instance)
    wait_until_reachable(store)
    first_started, second_done = threading.Event(), threading.Event()
    counts: dict[str, int] = {}
    unsorted = Spool(instance / "spool", "sms-unsorted")

    def slow(record: dict) -> None:
        first_started.set()
        assert second_done.wait(GUARD)
        replay_text(store, record, unsorted)

    def first() -> None:
        counts["first"] = sms_spool(instance).replay(slow)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_started.wait(GUARD)
    counts["second"] = replay_spool(store, instance)
    second_done.set()
    thread.join(GUARD)
    assert counts == {"first": len(OUTAGE_TEXTS), "second": 0}
    assert_ingested_once(store, instance, waiting)


def replayer_process(url: str, instance: Path, die_after: int = 0) -> subprocess.Popen[str]:
    """Start a process that replays the spool (and with ``die_after`` is killed, as by a crash,
    right after applying that many records); it prints how many it replayed."""
    code = textwrap.dedent(
        f"""
        import os, sys
        import redis
        from crisis_console.store import Store
        from crisis_console.webhooks.sms import replay_spool, replay_text, sms_spool
        from crisis_console.services.spool import Spool
        store = Store(redis.Redis.from_url({url!r}, decode_responses=True), {PREFIX!r})
        instance, die_after = {str(instance)!r}, {die_after}
        if not die_after:
            print(replay_spool(store, instance))
            sys.exit(0)
        applied = []
        unsorted = Spool(os.path.join(instance, "spool"), "sms-unsorted")
        def handle(record):
            replay_text(store, record, unsorted)
            applied.append(record)
            if len(applied) == die_after:
                os._exit(9)
        sms_spool(instance).replay(handle)
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_open311_posts_while_redis_is_down_answer_503_with_retry_after(console, owned):
    """The client is told to retry (GeoReport's error list, JSON or XML); nothing is spooled."""
    app, store, _twilio = console
    user = Accounts(store).create_user("city-app", Role.AGENT, "correct horse battery", actor="test")
    key = Accounts(store).create_token(user.username, "city app", actor="test", scope="open311")
    client = app.test_client()
    form = {"api_key": key, "service_code": "no_heat", "lat": "42.35", "long": "-71.06"}
    assert client.post("/open311/v2/requests.json", data=form).status_code == 201
    owned.stop()
    response = client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert [e["code"] for e in response.json] == [503] and "Try again" in response.json[0]["description"]
    response = client.post("/open311/v2/requests.xml", data=form)
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    root = ET.fromstring(response.get_data())
    assert root.tag == "errors" and root.find("error/code").text == "503"
    owned.start()
    wait_until_reachable(store)
    assert store.complaints.length() == 1


def test_a_text_that_cannot_be_spooled_either_is_told_nothing_was_taken(console, owned, monkeypatch):
    """With Redis down and the disk refusing the write, the texter is not told it was received."""
    _app, _store, twilio = console
    owned.stop()

    def full(self, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "append", full)
    answer = send(twilio, *OUTAGE_TEXTS[0], "SMfull")
    assert answer.startswith("Sorry, we cannot take texts right now") and SUMMARY_EN in answer
