"""Run the web process: Flask-SocketIO on gevent's WSGI server with gevent-websocket.

gevent's pywsgi writes a response's headers and body in separate sends; on a keep-alive
connection Nagle's algorithm then waits for the client's delayed ACK, adding ~40 ms to
every request (measured here: 44 ms p50 for a trivial API call). Setting TCP_NODELAY on
each accepted socket removes that wait. The server is built here rather than by
``socketio.run`` because that hard-codes its own handler class.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import socket

import gevent
from flask import Flask
from gevent import pywsgi
from geventwebsocket.handler import WebSocketHandler


class NoDelayHandler(WebSocketHandler):
    """gevent-websocket's handler, with Nagle's algorithm off for its connection."""

    def handle(self) -> None:
        """Serve the connection with TCP_NODELAY set."""
        with contextlib.suppress(OSError):  # not a TCP socket (a UNIX socket behind a proxy)
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


#: Seconds open requests and sockets get to finish when the console is stopped.
STOP_TIMEOUT = 3


def run(app: Flask, host: str, port: int) -> None:
    """Serve until stopped (Ctrl-C or SIGTERM), then return so the caller can clean up."""
    server = pywsgi.WSGIServer((host, port), app, handler_class=NoDelayHandler, log=None)

    def stop() -> None:
        # Signal handlers must not block: the stop runs in its own greenlet, and
        # serve_forever returns once it is done.
        gevent.spawn(server.stop, timeout=STOP_TIMEOUT)

    for number in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(number, stop)
    # Everything imported and built so far lives as long as the process: keep it out of the
    # cyclic collector's scans, whose pauses showed up as the slowest push deliveries.
    gc.collect()
    gc.freeze()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop(timeout=STOP_TIMEOUT)


def run_webhooks(host: str, port: int, workers: int, threads: int) -> None:
    """Serve only the Twilio webhooks with gunicorn's threaded workers (no gevent, no sockets)."""
    from gunicorn.app.base import BaseApplication

    from crisis_console.app import create_webhooks_app

    class WebhooksService(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("keepalive", 30)
            self.cfg.set("accesslog", None)

        def load(self):
            return create_webhooks_app()

    WebhooksService().run()
