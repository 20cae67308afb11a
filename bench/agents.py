"""A light crowd of agent pages: many Socket.IO connections in one asyncio process.

Speaks the Engine.IO v4 / Socket.IO v5 wire protocol directly over aiohttp websockets
(open, namespace connect with auth, ping/pong, events), which costs a few KiB per agent
instead of python-socketio's threads. Run by bench/push.py as a separate process:

    python -m bench.agents URL[,URL…] TOKENS_FILE RESULT_FILE

It connects one agent per token (the tokens dealt in turn to the URLs given), prints "ready N" when all are connected, records the
arrival time (time.time()) of every ``script.pushed`` per push id, answers each with
``script.received`` as the page does, and writes the arrival times as JSON on "stop"
(``{"arrivals": {push_id: [time, …]}, "frame_bytes": size of the first push frame,
"firsts": [{push_id: first arrival through that server}, …]}``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import aiohttp

NAMESPACE = "/agent"
PUSHED_PREFIX = f'42{NAMESPACE},["script.pushed",'
#: Answer script.received as pages do (set CC_BENCH_RECEIPTS=0 to measure delivery alone).
RECEIPTS = os.environ.get("CC_BENCH_RECEIPTS", "1") != "0"
#: Seconds the page waits before reporting receipt (see static/js/agent.js).
RECEIPT_DELAY_MIN, RECEIPT_DELAY_MAX = 0.2, 1.2


async def receipt(ws: aiohttp.ClientWebSocketResponse, push_id: int) -> None:
    """Send script.received after the same random delay as the agent page."""
    await asyncio.sleep(random.uniform(RECEIPT_DELAY_MIN, RECEIPT_DELAY_MAX))
    if not ws.closed:
        await ws.send_str(f"42{NAMESPACE}," + json.dumps(["script.received", {"push_id": push_id}]))


async def agent(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    arrivals: dict[int, list[float]],
    ready: asyncio.Event,
    frames: list[int],
    firsts: dict[int, float],
) -> None:
    """Connect one agent and record pushes until cancelled."""
    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with session.ws_connect(ws_url, heartbeat=None, max_msg_size=0) as ws:
        opened = await ws.receive_str()
        assert opened.startswith("0"), opened
        await ws.send_str(f"40{NAMESPACE}," + json.dumps({"token": token}))
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = message.data
            if data == "2":
                await ws.send_str("3")
            elif data.startswith(f"40{NAMESPACE},"):
                ready.set()
            elif data.startswith(f"44{NAMESPACE},"):
                raise RuntimeError(f"connection refused: {data}")
            elif data.startswith(PUSHED_PREFIX):
                # Time first, parse as little as possible: the crowd shares the machine with
                # the server, and its own cost must not show up as push latency.
                now = time.time()
                start = data.index('"push_id":', len(PUSHED_PREFIX)) + 10
                push_id = int(data[start : data.index(",", start)])
                arrivals.setdefault(push_id, []).append(now)
                firsts.setdefault(push_id, now)
                if not frames:
                    frames.append(len(data.encode()))
                if RECEIPTS:
                    asyncio.get_running_loop().create_task(receipt(ws, push_id))


async def main(urls: str, tokens_file: str, result_file: str) -> None:
    """Connect everyone, report readiness, record until told to stop."""
    tokens = json.loads(Path(tokens_file).read_text())
    servers = urls.split(",")
    arrivals: dict[int, list[float]] = {}
    frames: list[int] = []
    #: Per server, the first arrival of each push there (when each process's share started).
    firsts: list[dict[int, float]] = [{} for _ in servers]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        readies = []
        for offset in range(0, len(tokens), 100):
            batch = []
            for number, token in enumerate(tokens[offset : offset + 100], start=offset):
                ready = asyncio.Event()
                readies.append(ready)
                batch.append(ready)
                home = number % len(servers)
                tasks.append(
                    asyncio.create_task(
                        agent(session, servers[home], token, arrivals, ready, frames, firsts[home])
                    )
                )
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in batch)), 60)
        print(f"ready {len(readies)}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        with open(result_file, "w") as handle:
            json.dump(
                {
                    "arrivals": {str(k): v for k, v in arrivals.items()},
                    "frame_bytes": frames[0] if frames else 0,
                    "firsts": [{str(k): v for k, v in per_server.items()} for per_server in firsts],
                },
                handle,
            )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
