"""Closed connections are forgotten in batches: one round trip for many, nothing lost while
Redis is down, and a storm of thousands of disconnects that leaves no handler failing and no
record behind (against the served console)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import redis

from crisis_console.roles import Role
from crisis_console.sockets.departures import Departures
from crisis_console.store import Store
from tests.servers import owned_redis
from tests.test_receipts import ManualTasks


def test_closed_connections_are_forgotten_together_by_one_task(store):
    """Three disconnects of two users: one writer task, one write, every record gone; the task
    ends once nothing waits."""
    for user, sid in (("1", "a"), ("1", "b"), ("2", "c")):
        store.sockets.add(user, "/agent", sid)
    store.sockets.add("2", "/agent", "stays")
    tasks = ManualTasks()
    departures = Departures(store, spawn=tasks.spawn, sleep=tasks.sleep)
    departures.add(1, "/agent", "a")
    departures.add(1, "/agent", "b")
    departures.add(2, "/agent", "c")
    assert len(tasks.tasks) == 1 and departures.pending() == 3
    tasks.run_all()
    assert departures.pending() == 0 and not tasks.tasks
    assert store.sockets.all(1) == [] and store.sockets.all(2) == [("/agent", "stays")]
    departures.add(2, "/agent", "stays")  # a later one starts a new task
    assert len(tasks.tasks) == 1


def test_disconnects_noted_while_redis_is_down_are_written_once_it_is_back(tmp_path: Path):
    """Refused batches wait for the next write: none is lost, none written twice."""
    with owned_redis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1)
        store = Store(client, "departures-outage")
        store.sockets.add(7, "/agent", "x")
        store.sockets.add(7, "/agent", "y")
        tasks = ManualTasks()
        departures = Departures(store, spawn=tasks.spawn, sleep=tasks.sleep)
        departures.add(7, "/agent", "x")
        server.stop()
        assert departures.flush() == 0
        departures.add(7, "/agent", "y")
        assert departures.pending() == 2
        server.start()  # with what it wrote (append-only, fsync always)
        tasks.run_all()
        assert store.sockets.all(7) == []
        client.close()


STORM = 2_000


async def storm(url: str, token: str, records: Callable[[], int]) -> int:
    """Open ``STORM`` agent connections, wait until every one is recorded, close them all at
    once; return how many were recorded while open."""
    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for offset in range(0, STORM, 200):

            async def open_one() -> aiohttp.ClientWebSocketResponse:
                ws = await session.ws_connect(ws_url, heartbeat=None)
                assert (await ws.receive_str()).startswith("0")
                await ws.send_str("40/agent," + json.dumps({"token": token}))
                while not (answer := await ws.receive_str()).startswith("40/agent,"):
                    assert not answer.startswith("44"), answer  # refused
                return ws

            sockets += await asyncio.gather(*(open_one() for _ in range(min(200, STORM - offset))))
        recorded = records()
        await asyncio.gather(*(ws.close() for ws in sockets))
    return recorded


@pytest.mark.served
def test_a_storm_of_disconnects_fails_no_handler_and_leaves_no_record(served_app):
    """Two thousand agent sockets close at the same moment (a proxy reload, a network blip):
    every disconnect handler succeeds and every connection record is gone, in batches."""
    agent = served_app.make_user(Role.AGENT)
    token = served_app.token_for(agent)
    before = served_app.log.read_text(errors="replace").count("disconnect handler error")
    recorded = asyncio.run(storm(served_app.url, token, lambda: len(served_app.store.sockets.all(agent.id))))
    assert recorded == STORM
    deadline = time.monotonic() + 60  # a failure guard: the records go within a second here
    while served_app.store.sockets.all(agent.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served_app.store.sockets.all(agent.id) == []
    log = served_app.log.read_text(errors="replace")
    assert log.count("disconnect handler error") == before, log[-3000:]
