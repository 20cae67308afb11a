"""Fixtures: real Redis, the app and its clients, and the real server on a free port."""

from __future__ import annotations

import itertools
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings

from crisis_console.app import create_app
from crisis_console.config import TestConfig
from crisis_console.extensions import STORE_EXTENSION
from crisis_console.services.accounts import Accounts, User
from crisis_console.store import Store
from tests.chromium import launched
from tests.helpers import PASSWORD, AuthActions, TwilioSigner, unique_name
from tests.servers import free_port, redis_for_tests, start_console, stop_console

# Property tests run the same examples every run (derandomized), so they cannot fail by
# chance, and a busy machine cannot fail them either: no per-example deadline, and the
# "generation too slow" health check is off (it measures the machine, not the code).
settings.register_profile(
    "crisis-console", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("crisis-console")

_app_numbers = itertools.count(1)
#: The Twilio auth token of every test app: tests sign webhook requests with it.
TWILIO_TOKEN = "test-twilio-auth-token"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the Redis server for this run (see tests/redis_server.py)."""
    with redis_for_tests() as (url, _how):
        yield url


@pytest.fixture(scope="session")
def run_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this run; every key under it is removed at the end."""
    prefix = f"cctest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    Store(client, prefix).delete_all()
    client.close()


@pytest.fixture
def prefix(run_prefix: str) -> str:
    """A key prefix for one test, under the run's prefix."""
    return f"{run_prefix}:{next(_app_numbers)}"


@pytest.fixture
def app(redis_url: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A console app on the test Redis with its own key prefix.

    The phone path's deadlines are relaxed here: these tests check what a call hears and
    that it is counted, and a busy machine can stall the shared Redis past the shipped 0.25 s
    (the count would then land a moment later). The shipped deadlines, the breaker and the
    queued counting are what tests/test_faults_phone.py exercises, on a Redis it owns.
    """
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    return create_app(
        TestConfig(
            REDIS_URL=redis_url,
            CRISIS_KEY_PREFIX=prefix,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            PHONE_SOCKET_TIMEOUT=2.0,
            PHONE_REDIS_BUDGET=4.0,
        )
    )


@pytest.fixture
def store(app: Flask) -> Store:
    """The app's store."""
    return app.extensions[STORE_EXTENSION]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> AuthActions:
    """Sign in and out through the real routes."""
    return AuthActions(app, client)


@pytest.fixture
def twilio(client: FlaskClient) -> TwilioSigner:
    """Posts to the webhooks signed exactly as Twilio signs them."""
    return TwilioSigner(client, TWILIO_TOKEN)


@pytest.fixture
def runner(redis_url: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Runs the command line against the test Redis and prefix."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CRISIS_KEY_PREFIX", prefix)
    monkeypatch.setenv("CRISIS_INSTANCE_PATH", str(tmp_path / "instance"))
    return CliRunner()


@dataclass
class ServedApp:
    """The real server running in its own process."""

    url: str
    store: Store
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def accounts(self) -> Accounts:
        """The account service over the served console's store."""
        return Accounts(self.store)

    def make_user(self, role: str, *, team: str = "") -> User:
        """Create a user with a name no other test uses."""
        return self.accounts.create_user(unique_name(role), role, PASSWORD, team=team, actor="test")

    def session_for(self, user: User) -> requests.Session:
        """Return an HTTP session signed in as ``user`` through the JSON API."""
        http = requests.Session()
        response = http.post(
            f"{self.url}/api/v1/session", json={"username": user.username, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        http.headers["X-CSRFToken"] = response.json()["csrf_token"]
        return http

    def token_for(self, user: User) -> str:
        """Return a new API token for ``user``."""
        return self.accounts.create_token(user.username, "test", actor="test")


@contextmanager
def console_process(
    redis_url: str, prefix: str, folder: Path, module: str = "crisis_console", **settings: str
) -> Iterator[ServedApp]:
    """Run the real console (gevent, Socket.IO over the Redis queue) on a free port until exit.

    ``settings`` are environment variables on top of the test defaults (e.g. ``CRISIS_TIMEZONE``);
    ``module`` is the one run with ``python -m MODULE serve``.
    """
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CRISIS_KEY_PREFIX": prefix,
        "CRISIS_INSTANCE_PATH": str(folder / "instance"),
        "SECRET_KEY": "served-test-secret",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    log = folder / "server.log"
    process = start_console(env, log, port, module)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield ServedApp(f"http://127.0.0.1:{port}", Store(client, prefix), process, log)
    finally:
        stop_console(process)
        client.close()


@pytest.fixture(scope="session")
def served_app(
    redis_url: str, run_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    """The real console on a free port, shared by the run's served tests."""
    folder = tmp_path_factory.mktemp("served")
    # Tests add the categories they use.
    with console_process(redis_url, f"{run_prefix}:served", folder, CRISIS_SEED_CATALOGUE="0") as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium for one module's browser tests.

    Module-scoped on purpose: Playwright's sync API keeps an event loop running while it is
    open, which would break the tests that start Playwright themselves or use asyncio."""
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def scene(served_app: ServedApp) -> object:
    """A realistic console seeded through the real API, for the page crawl and the axe runs."""
    from tests.browsing import seed_scene

    return seed_scene(served_app)
