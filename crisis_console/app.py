"""The application factory."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import socketio as python_socketio
from flask import Flask

from crisis_console.config import Config, instance_secret_key, instance_twilio_token, load_dotenv_file
from crisis_console.extensions import STORE_EXTENSION, csrf, limiter, socketio
from crisis_console.store import RedisTarget, Store, connect, message_queue_url
from crisis_console.timing import init_timing

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def create_app(config: Config | dict[str, Any] | None = None) -> Flask:
    """Create the console's Flask app.

    Args:
        config: a :class:`Config` (default: read from the environment) or a dict of
            overrides applied on top of the environment's settings.

    Raises:
        crisis_console.store.StoreUnavailable: Redis cannot be reached.
        crisis_console.localtime.ZoneError: ``CRISIS_TIMEZONE`` names no time zone.
    """
    config = resolve_config(config)
    app = Flask(__name__, template_folder=str(ROOT / "templates"), instance_path=instance_path())
    app.config.from_object(config)
    init_timezone(app)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    if not app.config.get("TWILIO_AUTH_TOKEN"):
        app.config["TWILIO_AUTH_TOKEN"] = instance_twilio_token(app.instance_path)
        app.config["TWILIO_TOKEN_IS_LOCAL"] = True

    init_timing(app)
    init_store(app)
    init_catalogue(app)
    if not app.testing:  # Flask-SocketIO's test client refuses a message queue
        app.config["SOCKETIO_MESSAGE_QUEUE"] = message_queue(config, app.extensions[STORE_EXTENSION])
    init_alerts(app)
    init_security(app)
    init_views(app)
    init_subscribers(app)
    init_sockets(app)
    return app


def init_subscribers(app: Flask) -> None:
    """Let every change made through this app's store reach sockets, alerts, the phone line's
    fail-safe state and the public channels (see :mod:`crisis_console.subscribers`)."""
    from crisis_console.alert_hooks import hooks_of
    from crisis_console.sockets import realtime
    from crisis_console.subscribers import EXTENSION, Subscribers
    from crisis_console.webhooks.voice import IVR_STATE

    state = app.extensions[IVR_STATE]
    app.extensions[EXTENSION] = Subscribers(
        consoles=realtime,
        hooks=lambda: hooks_of(app),
        remember=state.save,
        publishers=public_channels(app.config),
    ).connect(app.extensions[STORE_EXTENSION])


def public_channels(settings: Mapping[str, Any]) -> list[Any]:
    """Return the publishers of the public channels (re-run after every change), from the
    settings of the web process or the worker alike."""
    from crisis_console.public import pages as public_pages
    from crisis_console.services import cap_feed

    return [cap_feed.publisher(settings), public_pages.publisher(settings)]


def init_timezone(app: Flask) -> None:
    """Resolve ``CRISIS_TIMEZONE`` (a bad name stops start-up, naming the setting) and keep the zone."""
    from crisis_console import localtime

    app.extensions[localtime.EXTENSION] = localtime.zone(app.config.get("CRISIS_TIMEZONE"))


def init_alerts(app: Flask) -> None:
    """Load the alert rules (a mistake stops start-up, naming file and line) and wire them."""
    from crisis_console.alert_hooks import EXTENSION, AlertHooks, load_rules
    from crisis_console.localtime import EXTENSION as EXTENSION_ZONE
    from crisis_console.sockets import realtime

    store: Store = app.extensions[STORE_EXTENSION]
    base = app.config.get("PUBLIC_BASE_URL") or ""
    app.extensions[EXTENSION] = AlertHooks(
        store,
        load_rules(app.config.get("ALERT_RULES")),
        console_url=f"{base}/manager/alerts" if base else "",
        emit=realtime.alert_sent,
        zone=app.extensions[EXTENSION_ZONE],
    )


def create_webhooks_app(config: Config | dict[str, Any] | None = None) -> Flask:
    """Create the phone path alone: the Twilio webhooks, no pages, no Socket.IO server.

    Served by ``serve --only webhooks`` under gunicorn, so calls are answered fast even
    while the main process broadcasts to thousands of sockets. It starts even if Redis
    is down (answering from the last known state) and publishes live statistics to the
    console's sockets through the Redis message queue when there is one.
    """
    config = resolve_config(config)
    app = Flask(__name__, template_folder=str(ROOT / "templates"), instance_path=instance_path())
    app.config.from_object(config)
    app.config["REQUIRE_STORE"] = False
    app.config["ERRORS_AS_JSON"] = True
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    if not app.config.get("TWILIO_AUTH_TOKEN"):
        app.config["TWILIO_AUTH_TOKEN"] = instance_twilio_token(app.instance_path)
    init_store(app)
    from crisis_console import errors, security_headers
    from crisis_console.services.ivr_state import LastKnownState
    from crisis_console.webhooks import bp as twilio_bp
    from crisis_console.webhooks.voice import IVR_STATE

    errors.init_app(app)
    security_headers.init_app(app)
    app.extensions[IVR_STATE] = LastKnownState(Path(app.instance_path) / "ivr-state.json")
    app.register_blueprint(twilio_bp)
    if app.config.get("SOCKETIO_MESSAGE_QUEUE"):
        socketio.init_app(
            app,
            async_mode="threading",
            client_manager=queue_manager(
                app.config["SOCKETIO_MESSAGE_QUEUE"],
                app.config["CRISIS_KEY_PREFIX"],
                write_only=False,
                settings=app.config,
            ),
        )
    return app


def resolve_config(config: Config | dict[str, Any] | None) -> Config:
    """Return the settings: the given Config, or the environment's with overrides applied."""
    load_dotenv_file()
    if isinstance(config, Config):
        return config
    resolved = Config()
    for name, value in (config or {}).items():
        setattr(resolved, name, value)
    return resolved


def message_queue(settings: Config, store: Store) -> str:
    """Return the Socket.IO message queue's URL: the external Redis's (``REDIS_URL``), or the
    embedded server's, which the CLI (``replay``, ``worker``) shares with ``serve`` and so
    tells open pages through."""
    return settings.SOCKETIO_MESSAGE_QUEUE or message_queue_url(store.redis)


def queue_manager(
    url: str, prefix: str, *, write_only: bool, settings: Mapping[str, Any] | None = None
) -> python_socketio.RedisManager:
    """Return the Socket.IO client manager on the Redis message queue at ``url`` (a
    ``REDIS_URL``, with its TLS and Sentinel ``settings``, default the environment's). Made
    here, as Flask-SocketIO would take the embedded server's ``unix://`` URL for a Kombu broker.
    """
    queue_url, options = RedisTarget.parse(url, settings).message_queue()
    return python_socketio.RedisManager(
        queue_url, channel=f"{prefix}-socketio", write_only=write_only, redis_options=options
    )


def healing_queue_manager(
    url: str, prefix: str, store: Store, settings: Mapping[str, Any] | None = None
) -> python_socketio.RedisManager:
    """Return the web process's queue manager: it re-delivers from the push records what its
    listener missed while cut off from Redis (see :mod:`crisis_console.sockets.healing`)."""
    from crisis_console.services.pushes import Pushes
    from crisis_console.sockets import realtime
    from crisis_console.sockets.healing import HealingRedisManager

    queue_url, options = RedisTarget.parse(url, settings).message_queue()
    manager = HealingRedisManager(
        queue_url,
        channel=f"{prefix}-socketio",
        last_seq=store.pushes.last_seq,
        reachable=Pushes(store).reachable,
        published_after=Pushes(store).published_after,
        rooms=realtime.push_rooms,
    )
    manager.redis_options = options  # TLS, credentials, the Sentinels' settings
    manager.record_recipients = store.pushes.add_connected
    return manager


def instance_path() -> str:
    """Return the instance folder (``CRISIS_INSTANCE_PATH``, default ``./instance``), absolute."""
    return str(Path(os.environ.get("CRISIS_INSTANCE_PATH") or ROOT / "instance").resolve())


def open_store(config: Config | dict[str, Any] | None = None) -> Store:
    """Connect the store without building a web app (for the CLI and the worker).

    Raises:
        crisis_console.store.StoreUnavailable: Redis cannot be reached.
    """
    settings = resolve_config(config)
    return Store(
        connect(settings.REDIS_URL, instance_path(), settings=vars(settings)), settings.CRISIS_KEY_PREFIX
    )


def init_store(app: Flask) -> None:
    """Connect to Redis (or start the embedded server) and keep the store on the app, with
    the phone path's own short-deadline client beside it.

    With ``REQUIRE_STORE`` false an unreachable server (given by URL) is not an error: the
    app starts degraded and its clients connect when Redis comes back.
    """
    from crisis_console.webhooks.voice import init_phone

    client = connect(
        app.config.get("REDIS_URL"),
        app.instance_path,
        check=app.config.get("REQUIRE_STORE", True),
        settings=app.config,
    )
    app.extensions[STORE_EXTENSION] = Store(client, app.config["CRISIS_KEY_PREFIX"])
    init_phone(app)


#: Seconds between tries of a start-up step that waits for Redis (growing to the last).
READY_RETRY_SECONDS = (0.5, 1.0, 2.0, 3.0)


def when_store_ready(what: str, step: Callable[[], Any]) -> bool:
    """Run a start-up step that needs Redis now, or, while Redis is down, in the background
    until it succeeds; return True when it ran now.

    ``serve`` starts during a Redis outage this way: seeding the catalogue, creating the
    first administrator and the delivery queue's group happen when Redis comes back.
    """
    from redis import RedisError

    try:
        step()
        return True
    except RedisError as exc:
        log.warning("%s waits for Redis: %s", what, exc)

    def retry() -> None:
        tries = 0
        while True:
            time.sleep(READY_RETRY_SECONDS[min(tries, len(READY_RETRY_SECONDS) - 1)])
            tries += 1
            try:
                step()
            except RedisError:
                continue
            log.warning("%s done, Redis is back (after %d tries)", what, tries)
            return

    threading.Thread(target=retry, daemon=True, name=f"when-ready: {what}").start()
    return False


def init_catalogue(app: Flask) -> None:
    """Seed the starter category catalogue if this deployment never had it (once, audited)."""
    from crisis_console.services import catalogue

    if app.config.get("SEED_CATALOGUE", True):
        store = app.extensions[STORE_EXTENSION]
        when_store_ready("seeding the category catalogue", lambda: catalogue.seed(store))


def init_security(app: Flask) -> None:
    """Wire the security headers (and a configured proxy), sign-in, CSRF and rate limiting."""
    from crisis_console import security_headers
    from crisis_console.auth import loaders

    security_headers.init_app(app)

    store: Store = app.extensions[STORE_EXTENSION]
    # The limiter's own client, built like the store's (TLS, Sentinel) with as short deadlines,
    # so a hung Redis makes sign-in a prompt 503 rather than a page that never loads.
    uri, options = store.target.limiter_storage()
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"key_prefix": store.keys.rate_limits_prefix(), **options}
    # Flask-Limiter adds each init_app's options to those of the apps before (one module-level
    # Limiter): a TLS app's ssl_* options would reach the next app's plain connection.
    limiter._storage_options = {}
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    loaders.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)


def init_views(app: Flask) -> None:
    """Register error handlers, template globals and blueprints."""
    from crisis_console import errors, templating
    from crisis_console.admin import bp as admin_bp
    from crisis_console.api import bp as api_bp
    from crisis_console.auth import bp as auth_bp
    from crisis_console.cap import bp as cap_bp
    from crisis_console.console import bp as console_bp
    from crisis_console.open311 import bp as open311_bp
    from crisis_console.public import views as public_pages
    from crisis_console.services.ivr_state import LastKnownState
    from crisis_console.webhooks import bp as twilio_bp
    from crisis_console.webhooks.voice import IVR_STATE

    errors.init_app(app)
    templating.init_app(app)
    app.extensions[IVR_STATE] = LastKnownState(Path(app.instance_path) / "ivr-state.json")
    app.register_blueprint(auth_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(twilio_bp)
    app.register_blueprint(open311_bp)
    app.register_blueprint(cap_bp)
    public_pages.init_app(app)


def init_sockets(app: Flask) -> None:
    """Attach Socket.IO; the namespace handlers must be registered before ``init_app``."""
    # Importing the handlers registers their namespaces on the module-level ``socketio``;
    # doing it before init_app is what makes a second app in the same process (the next
    # test) get them too.
    from crisis_console.security_headers import SocketHeaders
    from crisis_console.sockets import events
    from crisis_console.sockets.recipients import CountingManager

    # Events run in the connection's own reader, not a new task each: a push brings one
    # receipt per agent, and a task per frame cost more than the receipt (it is only noted
    # in memory now). One connection's events stay in order, as the page sends them.
    options: dict[str, Any] = {"async_mode": _async_mode(), "async_handlers": False}
    if app.config.get("SOCKETIO_MESSAGE_QUEUE"):
        options["client_manager"] = healing_queue_manager(
            app.config["SOCKETIO_MESSAGE_QUEUE"],
            app.config["CRISIS_KEY_PREFIX"],
            app.extensions[STORE_EXTENSION],
            settings=app.config,
        )
    else:  # one process: it delivers every push itself, and counts its recipients
        local = CountingManager()
        local.record_recipients = app.extensions[STORE_EXTENSION].pushes.add_connected
        options["client_manager"] = local
    socketio.init_app(app, **options)
    events.init_receipts(app)
    events.init_departures(app)
    app.wsgi_app = SocketHeaders(app.wsgi_app, socketio.server_options.get("path", "socket.io"))  # type: ignore[method-assign]


def _async_mode() -> str:
    """Use gevent when the process was monkey-patched for it (``serve``), else threads."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a pinned dependency
        return "threading"
    return "gevent" if monkey.is_module_patched("socket") else "threading"
