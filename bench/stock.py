"""The peer of bench/push.py: a stock Flask-SocketIO broadcast server on gevent.

What a team would write in an afternoon: a ``/agent`` namespace that accepts any connection
carrying a token, a no-op ``script.received`` handler (the same clients send receipts to both
servers, so the incoming traffic is the same), and ``POST /push`` that broadcasts its JSON body
as ``script.pushed`` to every connection of the namespace. With ``--queue`` several of them
share a Redis message queue, as the console's processes do.

    python -m bench.stock --port 5001 [--queue redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # as Flask-SocketIO's documentation has it for gevent with a message queue

import argparse  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask, request  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402


def make_app(queue: str | None) -> tuple[Flask, SocketIO]:
    """Return the app and its Socket.IO server, on gevent, with the queue if one is given."""
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="gevent", message_queue=queue, channel="stock-bench")

    @socketio.on("connect", namespace="/agent")
    def connect(auth: dict[str, Any] | None = None) -> bool:
        return bool(auth and auth.get("token"))

    @socketio.on("script.received", namespace="/agent")
    def received(_data: Any) -> None:
        return None

    @app.get("/login")
    def alive() -> str:
        return "ok"

    @app.post("/push")
    def push() -> tuple[dict[str, Any], int]:
        message = request.get_json()
        socketio.emit("script.pushed", message, namespace="/agent")
        return {"id": message["push_id"]}, 201

    return app, socketio


def main() -> None:
    """Serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", default=None)
    args = parser.parse_args()
    app, socketio = make_app(args.queue)
    socketio.run(app, host="127.0.0.1", port=args.port, log_output=False)


if __name__ == "__main__":
    main()
