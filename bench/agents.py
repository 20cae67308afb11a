"""A light crowd of agent pages: many Socket.IO connections in one asyncio process.

Speaks the Engine.IO v4 / Socket.IO v5 wire protocol directly over aiohttp websockets
(open, namespace connect with auth, ping/pong, events), which costs a few KiB per agent
instead of python-socketio's threads. Run by bench/push.py as a separate process:

    python -m bench.agents URL TOKENS_FILE RESULT_FILE

It connects one agent per token, prints "ready N" when all are connected, records the
arrival time (time.time()) of every ``script.pushed`` per push id, answers each with
``script.received`` as the page does, and writes the arrival times as JSON on "stop".
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

NAMESPACE = "/agent"


async def agent(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    arrivals: dict[int, list[float]],
    ready: asyncio.Event,
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
            elif data.startswith(f"42{NAMESPACE},"):
                now = time.time()
                name, payload = json.loads(data[len(f"42{NAMESPACE},") :])[:2]
                if name == "script.pushed":
                    arrivals.setdefault(payload["push_id"], []).append(now)
                    await ws.send_str(
                        f"42{NAMESPACE}," + json.dumps(["script.received", {"push_id": payload["push_id"]}])
                    )


async def main(url: str, tokens_file: str, result_file: str) -> None:
    """Connect everyone, report readiness, record until told to stop."""
    tokens = json.loads(Path(tokens_file).read_text())
    arrivals: dict[int, list[float]] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        readies = []
        for offset in range(0, len(tokens), 100):
            batch = []
            for token in tokens[offset : offset + 100]:
                ready = asyncio.Event()
                readies.append(ready)
                batch.append(ready)
                tasks.append(asyncio.create_task(agent(session, url, token, arrivals, ready)))
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in batch)), 60)
        print(f"ready {len(readies)}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        with open(result_file, "w") as handle:
            json.dump({str(k): v for k, v in arrivals.items()}, handle)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
