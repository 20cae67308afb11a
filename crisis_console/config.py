"""Configuration, read only from the environment (and an optional ``.env``)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from crisis_console.localtime import machine_zone_name

#: Settings read from the environment; API.md names them.
ENV_SETTINGS = (
    "REDIS_URL",
    "SECRET_KEY",
    "CRISIS_KEY_PREFIX",
    "PUBLIC_BASE_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "CRISIS_TIMEZONE",
)


#: Values of a yes/no setting that mean no.
NO = ("0", "false", "no", "off")


class SettingError(ValueError):
    """A setting holds a value the console cannot use; the message names the setting."""


def whole_number(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """Return the whole-number setting ``name`` (``default`` when unset or empty).

    Raises:
        SettingError: it is not a whole number of at least ``minimum``.
    """
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingError(f"{name} must be at least {minimum}, not {value}")
    return value


class Config:
    """Settings for a running console, each from the environment of the same name."""

    def __init__(self) -> None:
        env = os.environ
        self.REDIS_URL: str | None = env.get("REDIS_URL") or None
        # Beside a rediss:// URL: the CA that signed the server's certificate, a client
        # certificate and key when the server asks for one, and (clearly named, off by
        # default) accepting a certificate issued for another host name. Beside a
        # redis+sentinel:// URL: the Sentinels' own password. See store/connection.py.
        self.REDIS_CA_CERT: str | None = env.get("CRISIS_REDIS_CA_CERT") or None
        self.REDIS_CERT: str | None = env.get("CRISIS_REDIS_CERT") or None
        self.REDIS_KEY: str | None = env.get("CRISIS_REDIS_KEY") or None
        self.REDIS_TLS_SKIP_HOSTNAME_CHECK: bool = env.get(
            "CRISIS_REDIS_TLS_SKIP_HOSTNAME_CHECK", ""
        ).lower() not in (*NO, "")
        self.REDIS_SENTINEL_PASSWORD: str | None = env.get("CRISIS_REDIS_SENTINEL_PASSWORD") or None
        self.SECRET_KEY: str | None = env.get("SECRET_KEY") or None
        self.CRISIS_KEY_PREFIX: str = env.get("CRISIS_KEY_PREFIX") or "cc"
        self.PUBLIC_BASE_URL: str | None = (env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None
        self.TWILIO_ACCOUNT_SID: str | None = env.get("TWILIO_ACCOUNT_SID") or None
        self.TWILIO_AUTH_TOKEN: str | None = env.get("TWILIO_AUTH_TOKEN") or None
        self.TWILIO_FROM_NUMBER: str | None = env.get("TWILIO_FROM_NUMBER") or None
        # The IANA zone of every time people read (pages, CSV, alert texts); checked at start-up.
        self.CRISIS_TIMEZONE: str = (env.get("CRISIS_TIMEZONE") or "").strip() or machine_zone_name()
        # Several web processes (and the worker) share Socket.IO through Redis pub/sub; the
        # embedded server is single-process, so a queue is used only with an external Redis.
        self.SOCKETIO_MESSAGE_QUEUE: str | None = self.REDIS_URL
        # Sign-in throttles (Flask-Limiter syntax): per client address and per username.
        self.LOGIN_LIMIT_PER_IP: str = env.get("CRISIS_LOGIN_LIMIT_PER_IP") or "20 per minute"
        self.LOGIN_LIMIT_PER_USER: str = env.get("CRISIS_LOGIN_LIMIT_PER_USER") or "5 per minute"
        # Open311 service requests per API key: a city's app relays every resident's report
        # through one key, so the limit is set for a storm's volume, not one person's.
        self.OPEN311_POST_LIMIT: str = env.get("CRISIS_OPEN311_POST_LIMIT") or "6000 per minute"
        # Alert rules (a folder of TOML files) and the e-mail channel's SMTP server.
        self.ALERT_RULES: str | None = env.get("CRISIS_ALERT_RULES") or None
        self.SMTP_HOST: str | None = env.get("SMTP_HOST") or None
        self.SMTP_PORT: int = whole_number(env, "SMTP_PORT", 25, minimum=1)
        self.SMTP_FROM: str = env.get("SMTP_FROM") or "crisis-console@localhost"
        # How long a worker holds an alert delivery it is sending (renewed while it sends);
        # another worker takes the delivery over only once the lease has lapsed.
        self.DELIVERY_LEASE_MS: int = whole_number(env, "CRISIS_DELIVERY_LEASE_MS", 30_000, minimum=1)
        #: Seed the starter category catalogue on the first start of an empty deployment.
        self.SEED_CATALOGUE: bool = env.get("CRISIS_SEED_CATALOGUE", "1").lower() not in NO
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        self.WTF_CSRF_CHECK_DEFAULT = False  # checked in a hook that exempts bearer requests
        self.MAX_CONTENT_LENGTH = 5 * 1024 * 1024
        self.JSON_SORT_KEYS = False
        #: The console is reached over HTTPS (``CRISIS_HTTPS=1``; also assumed when
        #: ``PUBLIC_BASE_URL`` or ``PREFERRED_URL_SCHEME`` says https): the session cookie is
        #: then sent only over HTTPS, and links the console builds say https.
        self.HTTPS: bool = https_setting(env, self.PUBLIC_BASE_URL)
        self.SESSION_COOKIE_SECURE = self.HTTPS
        self.REMEMBER_COOKIE_SECURE = self.HTTPS
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.PREFERRED_URL_SCHEME = "https" if self.HTTPS else "http"
        #: How many proxies in front set ``X-Forwarded-For/-Proto/-Host/-Port``
        #: (``CRISIS_PROXY_HOPS``; Werkzeug's ProxyFix trusts that many). 0, the default, trusts
        #: none: a console reached directly must not believe what a client says it is.
        self.PROXY_HOPS: int = whole_number(env, "CRISIS_PROXY_HOPS", 0)


def https_setting(env: Mapping[str, str], public_base_url: str | None) -> bool:
    """Return whether the console is served over HTTPS: ``CRISIS_HTTPS`` when set, else
    whether ``PUBLIC_BASE_URL`` or ``PREFERRED_URL_SCHEME`` says https."""
    explicit = (env.get("CRISIS_HTTPS") or "").strip().lower()
    if explicit:
        return explicit not in NO
    scheme = (env.get("PREFERRED_URL_SCHEME") or "").strip().lower()
    return scheme == "https" or (public_base_url or "").startswith("https://")


class TestConfig(Config):
    """Settings for the test suite: the same code paths, a private key prefix."""

    TESTING = True
    __test__ = False  # not a pytest test class

    def __init__(self, **overrides: object) -> None:
        super().__init__()
        self.TESTING = True
        self.SECRET_KEY = "test-secret-key"
        # Flask-SocketIO's test client refuses a message queue, and the module-level SocketIO
        # would keep it for later apps: in-process test apps never get one.
        self.SOCKETIO_MESSAGE_QUEUE = None
        # Tests build the catalogue they need; a test of the starter catalogue turns this on.
        self.SEED_CATALOGUE = False
        for name, value in overrides.items():
            setattr(self, name, value)


def load_dotenv_file(path: str | os.PathLike[str] = ".env") -> None:
    """Load ``.env`` from the working folder without overriding the real environment."""
    from dotenv import load_dotenv

    if Path(path).is_file():
        load_dotenv(path, override=False)


def instance_secret_key(instance_path: str | os.PathLike[str]) -> str:
    """Return the secret key kept in ``instance/secret_key``, creating it once.

    Sessions then survive a restart even when ``SECRET_KEY`` is not set.
    """
    return _instance_secret(instance_path, "secret_key")


def _instance_secret(instance_path: str | os.PathLike[str], name: str) -> str:
    """Return a random secret kept in ``instance/<name>`` (mode 0600), creating it once."""
    folder = Path(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def instance_twilio_token(instance_path: str | os.PathLike[str]) -> str:
    """Return a local Twilio auth token kept in ``instance/twilio_auth_token`` (created once).

    Used only while ``TWILIO_AUTH_TOKEN`` is unset, so that ``make run`` and the ``call``
    command work together on a laptop. Real Twilio requests are refused until the real
    token is configured, because they are signed with it.
    """
    return _instance_secret(instance_path, "twilio_auth_token")
