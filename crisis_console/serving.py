"""Run the web process: Flask-SocketIO on gevent's WSGI server with gevent-websocket.

Without gevent-websocket installed, python-engineio serves websockets with simple-websocket
instead, and the plain pywsgi handler is used (bench/push.py measures the two side by side).

gevent's pywsgi writes a response's headers and body in separate sends; on a keep-alive
connection Nagle's algorithm then waits for the client's delayed ACK, adding ~40 ms to
every request (measured here: 44 ms p50 for a trivial API call). Setting TCP_NODELAY on
each accepted socket removes that wait. The server is built here rather than by
``socketio.run`` because that hard-codes its own handler class.

``serve --only webhooks`` (:func:`run_webhooks`) has no scheduler, yet its webhooks spool
texts and call counts while Redis is down: each of its gunicorn workers runs a
:class:`SpoolReplayer` thread that, every :data:`REPLAY_SECONDS`, looks at the spool files
(the file system only: no Redis call while nothing waits) and replays them when they hold
anything. Several workers, and a web process or worker on the same instance folder, may
replay at once: the spool gives each file to one replayer at a time.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import gevent
from flask import Flask
from gevent import pywsgi
from redis import RedisError
from werkzeug.wsgi import ClosingIterator

log = logging.getLogger(__name__)

#: Seconds between looks at the spool in each webhooks-only worker.
REPLAY_SECONDS = 2.0


try:
    from geventwebsocket.handler import WebSocketHandler as ConnectionHandler
except ImportError:  # python-engineio falls back to simple-websocket, on the plain handler
    ConnectionHandler = pywsgi.WSGIHandler


class NoDelayHandler(ConnectionHandler):
    """gevent-websocket's handler (or pywsgi's own), with Nagle's algorithm off."""

    def handle(self) -> None:
        """Serve the connection with TCP_NODELAY set."""
        with contextlib.suppress(OSError):  # not a TCP socket (a UNIX socket behind a proxy)
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


#: Seconds the requests in progress get to finish when the console is stopped.
STOP_TIMEOUT = 10


class InFlight:
    """WSGI middleware counting the plain HTTP requests in progress, so a stopping process
    can let them finish. Socket.IO's own requests (a websocket is open for a whole shift, a
    long poll for 25 s) are not counted: their clients reconnect to another process."""

    def __init__(self, app: Any, socket_path: str = "/socket.io/") -> None:
        self.app = app
        self.socket_path = socket_path
        self.count = 0
        self.changed = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith(self.socket_path):
            return self.app(environ, start_response)
        with self.changed:
            self.count += 1
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return ClosingIterator(body, [self._done])

    def _done(self) -> None:
        with self.changed:
            self.count -= 1
            self.changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no counted request is in progress (at most ``timeout`` s)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.count <= 0, timeout=timeout)


def run(app: Flask, host: str, port: int) -> None:
    """Serve until stopped (Ctrl-C or SIGTERM), then return so the caller can clean up."""
    in_flight = InFlight(app)
    server = pywsgi.WSGIServer((host, port), in_flight, handler_class=NoDelayHandler, log=None)

    def stop() -> None:
        # Signal handlers must not block: the stop runs in its own greenlet, and
        # serve_forever returns once it is done.
        gevent.spawn(stop_gracefully, server, in_flight)

    for number in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(number, stop)
    # Everything imported and built so far lives as long as the process: keep it out of the
    # cyclic collector's scans, whose pauses showed up as the slowest push deliveries.
    gc.collect()
    gc.freeze()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        stop_gracefully(server, in_flight)


def stop_gracefully(server: pywsgi.WSGIServer, in_flight: InFlight) -> None:
    """Refuse new connections, answer the ones already made, then stop.

    A proxy in front (nginx) sends a refused connection to another process, but never
    resends a POST it had already sent: a push or a call this process had taken must be
    answered, not cut off when the process exits. So: stop accepting, take the connections
    the kernel had already queued (closing the listener would reset them), close the
    listener, and wait (at most :data:`STOP_TIMEOUT`) for the requests in progress. Sockets
    are then dropped with the process, and their clients reconnect to another one.
    """
    server.stop_accepting()
    while True:
        try:
            accepted = server.do_read()  # the listening socket never waits: None when empty
        except OSError:
            break
        if not accepted:
            break
        server.do_handle(*accepted)
    with contextlib.suppress(OSError):
        server.socket.close()
    gevent.sleep(0)  # let the handlers just spawned start reading their requests
    if not in_flight.wait_idle(STOP_TIMEOUT):
        log.warning("stopping with %d requests still in progress after %s s", in_flight.count, STOP_TIMEOUT)
    server.stop()


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
            # gunicorn's control socket defaults to one path per user (~/.gunicorn): two
            # services on one host would share it. Nothing here uses it.
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("post_worker_init", replay_in_worker)

        def load(self):
            return create_webhooks_app()

    WebhooksService().run()


def replay_in_worker(worker: Any) -> None:
    """Start the spool replayer of a gunicorn worker, once it has loaded the app (after the
    fork, so the thread lives in the worker)."""
    SpoolReplayer(worker.wsgi).start()


class SpoolReplayer:
    """Replay the app's spools (texts and call counts) every few seconds, when they hold anything."""

    def __init__(self, app: Flask, interval: float = REPLAY_SECONDS):
        from crisis_console.extensions import STORE_EXTENSION
        from crisis_console.webhooks.call_counts import calls_spool
        from crisis_console.webhooks.sms import sms_spool

        self.app = app
        self.interval = interval
        self.store = app.extensions[STORE_EXTENSION]
        self.spools = [sms_spool(app.instance_path), calls_spool(app.instance_path)]
        self._stop = threading.Event()
        self._waiting_for_redis = False

    def start(self) -> threading.Thread:
        """Start the replaying thread (a daemon: it ends with the worker)."""
        thread = threading.Thread(target=self.run, daemon=True, name="spool-replay")
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask the thread to end after its current look."""
        self._stop.set()

    def run(self) -> None:
        """Look, and replay when something waits, until stopped."""
        while not self._stop.wait(self.interval):
            self.replay_once()

    def replay_once(self) -> int:
        """Replay the spools if anything waits in them; return how many records were handled."""
        from crisis_console import scheduler
        from crisis_console.store import StoreUnavailable

        if not any(spool.has_waiting() for spool in self.spools):
            return 0
        try:
            with self.app.app_context():
                done = scheduler.replay_spooled(self.store, str(Path(self.app.instance_path)))
        except (RedisError, StoreUnavailable) as exc:
            if not self._waiting_for_redis:  # once per outage, not every few seconds
                log.warning("spooled texts and call counts wait, Redis unavailable: %s", exc)
            self._waiting_for_redis = True
            return 0
        except Exception:
            log.exception("spooled texts or call counts not replayed; kept for the next look")
            return 0
        self._waiting_for_redis = False
        return done
