"""Sending alert deliveries: SMS through Twilio, e-mail through SMTP, outgoing webhooks.

Deliveries wait in a Redis stream read through a consumer group, so any number of workers
share them and an entry read by a worker that dies is taken over by another
(``XAUTOCLAIM``). Before sending, a worker marks the attempt in the delivery record; a
delivery already recorded as sent is never sent again. A failed attempt is parked and
retried with exponential backoff; after ``MAX_ATTEMPTS`` (or at once for a mistake no retry
can fix, such as a number Twilio refuses) it is marked failed, with the reason on the
alerts page.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from alerts.evaluate import backoff_seconds
from crisis_console.services.alerting import OPTED_OUT, OPTED_OUT_TEXT
from crisis_console.store import Store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
#: An entry read but not acknowledged for this long belongs to a dead worker.
STALE_MS = 30_000


class PermanentFailure(Exception):
    """A delivery that no retry can fix."""


@dataclass
class Settings:
    """Where deliveries go out: Twilio, SMTP and the public URL for status callbacks."""

    twilio_sid: str | None = None
    twilio_token: str | None = None
    twilio_from: str | None = None
    public_base_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "crisis-console@localhost"
    #: The Twilio SDK's HTTP client (tests give one that never reaches the network).
    twilio_http: Any = None
    http: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def from_config(cls, config: Any) -> Settings:
        """Build from a Flask config (or any mapping with the same names)."""
        return cls(
            twilio_sid=config.get("TWILIO_ACCOUNT_SID"),
            twilio_token=None if config.get("TWILIO_TOKEN_IS_LOCAL") else config.get("TWILIO_AUTH_TOKEN"),
            twilio_from=config.get("TWILIO_FROM_NUMBER"),
            public_base_url=config.get("PUBLIC_BASE_URL"),
            smtp_host=config.get("SMTP_HOST"),
            smtp_port=int(config.get("SMTP_PORT") or 25),
            smtp_from=config.get("SMTP_FROM") or "crisis-console@localhost",
            twilio_http=config.get("TWILIO_HTTP_CLIENT"),
        )


class Senders:
    """One function per channel: send a delivery, return the provider's id (or '')."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._twilio: Client | None = None

    def send(self, channel: str, to: str, text: str, alert: dict[str, Any]) -> tuple[str, str]:
        """Send on ``channel``; return (status, provider id)."""
        if channel == "sms":
            return "sent", self.sms(to, text)
        if channel == "email":
            self.email(to, text, alert)
            return "sent", ""
        if channel == "webhook":
            self.webhook(to, alert)
            return "delivered", ""
        raise PermanentFailure(f"unknown channel {channel!r}")

    def sms(self, to: str, text: str) -> str:
        """Send a text through Twilio's Messages API; return the message SID."""
        s = self.settings
        if not (s.twilio_sid and s.twilio_token and s.twilio_from):
            raise PermanentFailure(
                "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)"
            )
        if self._twilio is None:
            self._twilio = Client(
                s.twilio_sid, s.twilio_token, http_client=s.twilio_http or TwilioHttpClient(timeout=10)
            )
        options: dict[str, Any] = {"to": to, "from_": s.twilio_from, "body": text[:1500]}
        if s.public_base_url:
            options["status_callback"] = f"{s.public_base_url}/twilio/sms/status"
        try:
            return str(self._twilio.messages.create(**options).sid)
        except TwilioRestException as exc:
            # 4xx answers (a bad number, an unverified recipient) will not change on retry.
            if 400 <= exc.status < 500 and exc.status != 429:
                raise PermanentFailure(f"Twilio refused it: {exc.msg} (code {exc.code})") from None
            raise

    def email(self, to: str, text: str, alert: dict[str, Any]) -> None:
        """Send an e-mail through the configured SMTP server."""
        s = self.settings
        if not s.smtp_host:
            raise PermanentFailure("e-mail is not configured (SMTP_HOST)")
        message = EmailMessage()
        message["From"], message["To"] = s.smtp_from, to
        message["Subject"] = (
            "EXERCISE — " if alert.get("exercise") == "1" else ""
        ) + f"Crisis Console alert: {alert.get('rule_id')}"
        message.set_content(text)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)

    def webhook(self, url: str, alert: dict[str, Any]) -> None:
        """POST the alert as JSON; any 2xx answer is delivered."""
        body = {k: alert.get(k) for k in ("id", "rule_id", "trigger", "message", "created_at")}
        body["exercise"] = alert.get("exercise") == "1"
        response = self.settings.http.post(url, json=body, timeout=10)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PermanentFailure(f"the webhook answered {response.status_code}")
        response.raise_for_status()


class Deliverer:
    """Reads the delivery queue and sends; safe to run in several processes at once."""

    def __init__(
        self,
        store: Store,
        senders: Senders,
        consumer: str | None = None,
        *,
        sent: Callable[[dict[str, Any]], None] = lambda delivery: None,
    ):
        self.store = store
        self.senders = senders
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}"
        self.sent = sent
        store.alerts.ensure_group()

    def run_once(self, block_ms: int | None = None, count: int = 50) -> int:
        """Requeue due retries, take over stale entries, send new ones; return how many were handled."""
        repo = self.store.alerts
        repo.requeue_due(time.time())
        entries = repo.claim_stale(self.consumer, STALE_MS) + repo.read(self.consumer, count, block_ms)
        for entry_id, delivery_id in entries:
            if delivery_id:
                self.handle(delivery_id)
            repo.done(entry_id)
        return len(entries)

    def handle(self, delivery_id: str) -> None:
        """Attempt one delivery (unless it is already done) and record the outcome."""
        repo = self.store.alerts
        attempt = repo.start_attempt(delivery_id)
        if attempt is None:
            return
        delivery = repo.delivery(delivery_id) or {}
        alert = repo.fields(delivery.get("alert_id", "")) or {}
        if delivery.get("channel") == "sms" and self.store.sms.opted_out(delivery.get("to", "")):
            # Opted out after the alert was raised (or while it waited for a retry): never text it.
            repo.finish(delivery_id, "skipped", skip_reason=OPTED_OUT, last_error=OPTED_OUT_TEXT)
            self.sent({**(repo.delivery(delivery_id) or {}), "alert_id": delivery.get("alert_id")})
            return
        try:
            status, provider_id = self.senders.send(
                delivery.get("channel", ""), delivery.get("to", ""), alert.get("message", ""), alert
            )
        except PermanentFailure as exc:
            repo.finish(delivery_id, "failed", last_error=str(exc))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if attempt >= MAX_ATTEMPTS:
                repo.finish(delivery_id, "failed", last_error=f"gave up after {attempt} attempts: {error}")
            else:
                repo.retry_later(delivery_id, time.time() + backoff_seconds(attempt), error)
                log.warning("delivery %s attempt %s failed, retrying: %s", delivery_id, attempt, error)
        else:
            repo.finish(delivery_id, status, provider_id=provider_id, last_error="")
        self.sent({**(repo.delivery(delivery_id) or {}), "alert_id": delivery.get("alert_id")})


def loop(
    deliverer: Deliverer, sleep: Callable[[float], None], stop: Callable[[], bool] = lambda: False
) -> None:
    """Deliver until ``stop()``; a Redis outage is logged and waited out."""
    from redis import RedisError

    while not stop():
        try:
            if not deliverer.run_once(block_ms=None):
                sleep(1.0)
        except RedisError as exc:
            log.warning("delivery paused, Redis unavailable: %s", exc)
            sleep(5.0)
