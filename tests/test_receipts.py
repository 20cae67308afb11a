"""Receipts gathered in memory and written in batches: exact counts, first-arrival times, no
task left behind, and nothing lost while Redis is down (on a redis-server the test owns)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from crisis_console.services.audit import AuditEntry
from crisis_console.services.propagation import LATE_MS, propagation
from crisis_console.services.receipts import ReceiptBatcher, push_number
from crisis_console.store import Store
from crisis_console.store.pushes import RECEIVED_SLICE
from tests.servers import owned_redis


class ManualTasks:
    """Stands in for the server's task spawning: tasks are kept, and run when the test says."""

    def __init__(self) -> None:
        self.tasks: list[Callable[[], None]] = []
        self.sleeps: list[float] = []

    def spawn(self, task: Callable[[], None]) -> None:
        self.tasks.append(task)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def run_all(self) -> None:
        while self.tasks:
            self.tasks.pop(0)()


def make_push(store: Store, audience: list[int]) -> int:
    fields = {"script_id": "1", "version": "1", "audience": '"all"', "payload": "{}", "event_id": ""}
    fields["audience_size"] = str(len(audience))
    return store.pushes.create(fields, audience, AuditEntry("test", "push.created", "push"))


@pytest.fixture
def batched(store: Store) -> Iterator[tuple[ReceiptBatcher, ManualTasks, list[dict]]]:
    tasks, reported = ManualTasks(), []
    yield ReceiptBatcher(store, report=reported.append, spawn=tasks.spawn, sleep=tasks.sleep), tasks, reported


def test_marks_are_written_in_one_batch_once_each_with_the_first_arrival(store, batched):
    """Receipts of two pushes become one write; a repeat keeps the first time; an agent not in
    the audience is not counted; the writer task ends once nothing waits."""
    batcher, tasks, reported = batched
    first, second = make_push(store, [1, 2, 3]), make_push(store, [1, 2])
    batcher.add(first, "1", at_ms=1_000)
    batcher.add(first, "1", at_ms=1_500)  # a page re-sent it: the first arrival stands
    batcher.add(first, "2", at_ms=1_200)
    batcher.add(first, "99", at_ms=1_300)  # not addressed: ignored
    batcher.add(second, "2", at_ms=2_000)
    assert len(tasks.tasks) == 1 and batcher.pending() == 4  # one writer for all of them
    tasks.run_all()
    assert tasks.sleeps == [0.25]
    assert sorted(reported, key=lambda p: p["push_id"]) == [
        {"push_id": first, "delivered": 2, "acknowledged": 0, "audience_size": 3},
        {"push_id": second, "delivered": 1, "acknowledged": 0, "audience_size": 2},
    ]
    assert store.pushes.times(first)[0] == [1_000, 1_200]
    assert store.pushes.receipts(first)[1] == {"1", "2"}
    assert batcher.pending() == 0 and not tasks.tasks
    batcher.add(first, "3", at_ms=3_000)  # the next receipt starts a writer again
    assert len(tasks.tasks) == 1


def test_an_acknowledgement_counts_as_received_once(store, batched):
    """Pressing "Got it" before the receipt is written marks the page received; the receipt
    that follows changes nothing."""
    batcher, tasks, reported = batched
    push_id = make_push(store, [7])
    assert store.pushes.record_receipt(push_id, "7", True, 5_000).delivered == 1
    batcher.add(push_id, "7", at_ms=4_000)
    tasks.run_all()
    assert reported == [{"push_id": push_id, "delivered": 1, "acknowledged": 1, "audience_size": 1}]
    assert store.pushes.times(push_id)[0] == [5_000]


def test_a_push_to_more_agents_than_a_slice_is_written_whole(store, batched):
    """Marks are written in slices of RECEIVED_SLICE; every one lands and the count is final."""
    batcher, tasks, reported = batched
    agents = list(range(1, 2 * RECEIVED_SLICE + 501))
    push_id = make_push(store, agents)
    for agent in agents:
        batcher.add(push_id, str(agent), at_ms=agent)
    tasks.run_all()
    assert reported == [
        {"push_id": push_id, "delivered": len(agents), "acknowledged": 0, "audience_size": len(agents)}
    ]
    assert store.pushes.times(push_id)[0] == agents


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), ("12", 12), (0, None), (-1, None), (True, None), ("1e3", None), ("9" * 40, None), (None, None)],
)
def test_push_numbers(value, expected):
    """Only a positive whole number (or its digits) is a push id."""
    assert push_number(value) == expected


def test_marks_wait_out_a_redis_outage_and_are_written_after(tmp_path: Path):
    """Redis stopped: the batch is kept (first arrivals) and retried; Redis back: all written."""
    with owned_redis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1)
        store = Store(client, "receipts-outage")
        push_id = make_push(store, [1, 2])
        written = threading.Event()
        reported: list[dict] = []

        def report(progress: dict) -> None:
            reported.append(progress)
            written.set()

        tasks = ManualTasks()
        batcher = ReceiptBatcher(store, report=report, spawn=tasks.spawn, sleep=tasks.sleep)
        batcher.add(push_id, "1", at_ms=100)
        server.stop()
        assert batcher.flush() == []  # refused: kept for the next write
        batcher.add(push_id, "1", at_ms=150)  # a page re-sent it: the first arrival stands
        batcher.add(push_id, "2", at_ms=200)
        assert batcher.pending() == 2
        server.start()  # with what it wrote (append-only, fsync always)
        tasks.run_all()
        assert written.is_set() and reported[-1]["delivered"] == 2
        assert store.pushes.times(push_id)[0] == [100, 200]
        client.close()


# --- propagation ----------------------------------------------------------------------------


def test_propagation_figures_are_read_against_the_connected_agents():
    """Ten connected: 50 % is the 5th receipt, 90 % the 9th, 100 % the 10th, each after the push."""
    received = [1_000 + 10 * n for n in range(1, 11)]  # 10, 20, ..., 100 ms after the push
    figures = propagation(1_000, 10, received, [1_500, 1_900], now_ms=1_200)
    assert figures == {
        "connected": 10,
        "received_ms": {"50": 50, "90": 90, "100": 100},
        "acknowledged_ms": {"50": None, "90": None, "100": None},
        "late": False,
    }


def test_a_push_short_of_its_connected_agents_is_late_after_two_seconds():
    """Nine of ten pages after 1.9 s: not late yet; after 2.1 s: late; everyone but after 2.5 s: late."""
    nine = [1_000 + 10 * n for n in range(1, 10)]
    assert propagation(1_000, 10, nine, [], now_ms=1_000 + LATE_MS - 100)["late"] is False
    assert propagation(1_000, 10, nine, [], now_ms=1_000 + LATE_MS + 100)["late"] is True
    assert propagation(1_000, 10, [*nine, 3_500], [], now_ms=9_000)["late"] is True
    assert propagation(1_000, 0, [], [], now_ms=9_000) == {
        "connected": 0,
        "received_ms": {"50": None, "90": None, "100": None},
        "acknowledged_ms": {"50": None, "90": None, "100": None},
        "late": False,
    }
    assert propagation(None, 3, [1], [], now_ms=9_000) is None  # made before figures were kept


def test_acknowledgements_keep_their_first_time(store):
    """A second "Got it" from the same agent keeps the time of the first."""
    push_id = make_push(store, [4, 5])
    store.pushes.record_receipt(push_id, "4", True, 2_000)
    store.pushes.record_receipt(push_id, "4", True, 2_500)
    store.pushes.record_receipt(push_id, "5", True, 3_000)
    assert store.pushes.times(push_id)[1] == [2_000, 3_000]
    store.pushes.add_connected(push_id, 2)
    assert store.pushes.get(push_id)["connected"] == "2"
