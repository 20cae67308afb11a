"""Sending alert deliveries: SMS through Twilio, e-mail through SMTP, outgoing webhooks.

Deliveries wait in a Redis stream read through a consumer group, so any number of workers
share them. Each alert goes out once per recipient and channel:

* **A lease.** Before sending, a worker takes the delivery's lease (a key set NX with a
  short expiry, ``Settings.lease_ms``) and marks the attempt started; a heartbeat thread
  (a greenlet under ``serve``) renews the lease every third of it while the request is under
  way, and also resets the idle time of the queue entry being sent. Another worker takes an
  entry over (``XAUTOCLAIM``) only once it has been idle a whole lease, and sends it only if
  it then gets the lease: a slow receiver never makes a delivery go out twice, and a worker
  that dies mid-send hands its delivery over one lease later.
* **A check before sending again.** A delivery whose earlier attempt may have gone out (the
  worker died or lost its lease mid-request, or the request failed without an answer) is
  checked first. SMS: the message SID is recorded as soon as Twilio answers (and Twilio's
  status callback finds it by that SID); without one, Twilio's Messages list for that
  recipient and sender is searched for the same text created since the first attempt, and a
  match is recorded instead of texting again (Twilio's Messages API has no idempotency key).
  Webhooks carry an ``Idempotency-Key`` header (the same for every attempt of a delivery) and
  the answer is recorded; e-mails a ``Message-ID`` derived from the delivery, so receivers
  that deduplicate by it show one message.
* **What remains.** A text Twilio creates after the list was searched (a request that left
  a dying worker more than a lease earlier but reached Twilio only later), or a message the
  list no longer shows among the recipient's newest, can still be sent twice; a webhook
  receiver that ignores ``Idempotency-Key`` and an SMTP server that accepted a message whose
  answer was lost can see it twice.

A failed attempt is parked and retried with exponential backoff; after ``MAX_ATTEMPTS`` (or
at once for a mistake no retry can fix, such as a number Twilio refuses) it is marked
failed, with the reason on the alerts page.
"""

from __future__ import annotations

import logging
import re
import secrets
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from alerts.evaluate import backoff_seconds
from crisis_console.services.alerting import OPTED_OUT, OPTED_OUT_TEXT
from crisis_console.store import Store
from crisis_console.store.alerts import BUSY, DONE

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
#: How long a delivery's lease lasts unless its sender renews it (it renews every third of it):
#: a delivery whose worker died is taken over this long after its last renewal.
LEASE_MS = 30_000
#: How far Twilio's clock may be behind ours when a message is looked up by creation time.
CLOCK_SKEW_S = 30
#: How many of a recipient's newest messages are searched for one that may have gone out.
LOOKUP_LIMIT = 50


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
    #: A delivery's lease (ms); see :data:`LEASE_MS`.
    lease_ms: int = LEASE_MS

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
            lease_ms=int(config.get("DELIVERY_LEASE_MS") or LEASE_MS),
        )


@dataclass(frozen=True)
class Sent:
    """What a provider answered to a send: the status, its message id, a note of the answer."""

    status: str
    provider_id: str = ""
    response: str = ""


class Senders:
    """One function per channel: send a delivery, return the provider's id (or '')."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._twilio: Client | None = None

    def send(self, channel: str, to: str, text: str, alert: dict[str, Any], *, key: str = "") -> Sent:
        """Send on ``channel``; ``key`` names the delivery (the same for each of its attempts)."""
        if channel == "sms":
            return Sent("sent", self.sms(to, text))
        if channel == "email":
            self.email(to, text, alert, key=key)
            return Sent("sent")
        if channel == "webhook":
            return Sent("delivered", response=self.webhook(to, alert, key=key))
        raise PermanentFailure(f"unknown channel {channel!r}")

    def twilio(self) -> Client:
        """Return the Twilio client (raising PermanentFailure when Twilio is not configured)."""
        s = self.settings
        if not (s.twilio_sid and s.twilio_token and s.twilio_from):
            raise PermanentFailure(
                "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)"
            )
        if self._twilio is None:
            self._twilio = Client(
                s.twilio_sid, s.twilio_token, http_client=s.twilio_http or TwilioHttpClient(timeout=10)
            )
        return self._twilio

    def sms(self, to: str, text: str) -> str:
        """Send a text through Twilio's Messages API; return the message SID."""
        s = self.settings
        client = self.twilio()
        options: dict[str, Any] = {"to": to, "from_": s.twilio_from, "body": sms_body(text)}
        if s.public_base_url:
            options["status_callback"] = f"{s.public_base_url}/twilio/sms/status"
        try:
            return str(client.messages.create(**options).sid)
        except TwilioRestException as exc:
            # 4xx answers (a bad number, an unverified recipient) will not change on retry.
            if 400 <= exc.status < 500 and exc.status != 429:
                raise PermanentFailure(f"Twilio refused it: {exc.msg} (code {exc.code})") from None
            raise

    def find_sms(self, to: str, text: str, since: float, taken: Callable[[str], bool]) -> str | None:
        """Return the SID of a text to ``to`` with this body that Twilio created since ``since``
        (epoch seconds, less the clock skew) and that ``taken`` does not claim for another
        delivery; None when Twilio has none (so it was never sent)."""
        body = sms_body(text)
        earliest = datetime.fromtimestamp(since - CLOCK_SKEW_S, UTC)
        for message in self.twilio().messages.list(
            to=to, from_=self.settings.twilio_from, limit=LOOKUP_LIMIT
        ):
            created = message.date_created
            if message.body == body and (created is None or created >= earliest) and not taken(message.sid):
                return str(message.sid)
        return None

    def email(self, to: str, text: str, alert: dict[str, Any], *, key: str = "") -> None:
        """Send an e-mail through the configured SMTP server (its Message-ID derived from ``key``)."""
        s = self.settings
        if not s.smtp_host:
            raise PermanentFailure("e-mail is not configured (SMTP_HOST)")
        message = EmailMessage()
        message["From"], message["To"] = s.smtp_from, to
        message["Subject"] = (
            "EXERCISE — " if alert.get("exercise") == "1" else ""
        ) + f"Crisis Console alert: {alert.get('rule_id')}"
        if key:
            # The same for every attempt: a mail system that sees one twice shows it once.
            domain = s.smtp_from.rpartition("@")[2] or "localhost"
            message["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9.-]+', '.', key).strip('.')}@{domain}>"
        message.set_content(text)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)

    def webhook(self, url: str, alert: dict[str, Any], *, key: str = "") -> str:
        """POST the alert as JSON with an ``Idempotency-Key``; any 2xx answer is delivered.
        Return a note of the answer (its status and any request id the receiver gave)."""
        body = {k: alert.get(k) for k in ("id", "rule_id", "trigger", "message", "created_at")}
        body["exercise"] = alert.get("exercise") == "1"
        headers = {"Idempotency-Key": key} if key else {}
        response = self.settings.http.post(url, json=body, headers=headers, timeout=10)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PermanentFailure(f"the webhook answered {response.status_code}")
        response.raise_for_status()
        request_id = (response.headers or {}).get("X-Request-Id", "")
        return f"HTTP {response.status_code}" + (f" {request_id[:100]}" if request_id else "")


def sms_body(text: str) -> str:
    """Return the body an alert text is sent with (and looked up by)."""
    return text[:1500]


class Deliverer:
    """Reads the delivery queue and sends; safe to run in several processes at once."""

    def __init__(
        self,
        store: Store,
        senders: Senders,
        consumer: str | None = None,
        *,
        sent: Callable[[dict[str, Any]], None] = lambda delivery: None,
        claim_idle_ms: int | None = None,
    ):
        self.store = store
        self.senders = senders
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}"
        self.sent = sent
        self.lease_ms = int(senders.settings.lease_ms)
        #: How long another consumer's entry must have sat unrenewed before this one looks at it
        #: (a lease by default; looking earlier is safe, since only the lease holder sends).
        self.claim_idle_ms = self.lease_ms if claim_idle_ms is None else claim_idle_ms
        store.alerts.ensure_group()

    def run_once(self, block_ms: int | None = None, count: int = 50) -> int:
        """Requeue due retries, take over entries idle a whole lease, send new ones; return how
        many were handled."""
        repo = self.store.alerts
        repo.requeue_due(time.time())
        entries = repo.claim_stale(self.consumer, self.claim_idle_ms) + repo.read(
            self.consumer, count, block_ms
        )
        for entry_id, delivery_id in entries:
            # An entry whose delivery another worker is sending stays pending: that worker
            # acknowledges its own entry, and this one is seen again if it dies.
            if not delivery_id or self.handle(delivery_id, entry_id):
                repo.done(entry_id)
        return len(entries)

    def handle(self, delivery_id: str, entry_id: str = "") -> bool:
        """Attempt one delivery under its lease (unless it is done) and record the outcome.

        Returns False when the queue entry must stay pending: another worker holds the lease
        (it is sending it now), or this one lost it before recording a failure (the worker
        that takes the entry over decides)."""
        repo = self.store.alerts
        token = secrets.token_hex(8)
        taken = repo.take(delivery_id, token, self.lease_ms, self.consumer)
        if taken == DONE:
            return True
        if taken == BUSY:
            return False
        attempt, before = taken
        if before == "sending":
            log.info(
                "delivery %s: taking over attempt %s, which was never confirmed", delivery_id, attempt - 1
            )
        with self._lease(delivery_id, token, entry_id):
            return self._attempt(delivery_id, token, int(attempt))

    @contextmanager
    def _lease(self, delivery_id: str, token: str, entry_id: str) -> Iterator[None]:
        """Renew the lease every third of it until the block ends (a thread, or a greenlet
        under ``serve``: the request's socket waits cooperatively there)."""
        from redis import RedisError

        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_ms / 3000):
                try:
                    if not self.store.alerts.renew(
                        delivery_id, token, self.lease_ms, self.consumer, entry_id
                    ):
                        log.warning(
                            "delivery %s: lease lost mid-send; the next worker checks it", delivery_id
                        )
                        return
                except RedisError as exc:
                    log.warning("delivery %s: lease not renewed: %s", delivery_id, exc)

        beat = threading.Thread(target=renew, daemon=True, name=f"lease-{delivery_id}")
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()

    def _attempt(self, delivery_id: str, token: str, attempt: int) -> bool:
        """Check, send and record one attempt; return whether its outcome was recorded."""
        repo = self.store.alerts
        delivery = repo.delivery(delivery_id) or {}
        alert = repo.fields(delivery.get("alert_id", "")) or {}
        channel, to, text = delivery.get("channel", ""), delivery.get("to", ""), alert.get("message", "")
        if channel == "sms" and self.store.sms.opted_out(to):
            # Opted out after the alert was raised (or while it waited for a retry): never text it.
            recorded = repo.finish(
                delivery_id, "skipped", token, skip_reason=OPTED_OUT, last_error=OPTED_OUT_TEXT
            )
            self._announce(delivery_id, delivery)
            return recorded
        try:
            if channel == "sms" and attempt > 1:
                # An earlier attempt may have gone out (its worker died or lost the lease
                # mid-request, or the answer was lost): text only if Twilio has no such message.
                found = delivery.get("provider_id") or self.senders.find_sms(
                    to,
                    text,
                    int(delivery.get("first_attempt_ms") or 0) / 1000,
                    lambda sid: repo.by_provider(sid) not in (None, delivery_id),
                )
                if found:
                    repo.finish(
                        delivery_id, "sent", token, provider_id=found, last_error="", confirmed_by="lookup"
                    )
                    self._announce(delivery_id, delivery)
                    return True
            result = self.senders.send(channel, to, text, alert, key=self.store.keys.delivery(delivery_id))
        except PermanentFailure as exc:
            recorded = repo.finish(delivery_id, "failed", token, last_error=str(exc))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if attempt >= MAX_ATTEMPTS:
                recorded = repo.finish(
                    delivery_id, "failed", token, last_error=f"gave up after {attempt} attempts: {error}"
                )
            else:
                recorded = repo.retry_later(delivery_id, time.time() + backoff_seconds(attempt), error, token)
                log.warning("delivery %s attempt %s failed, retrying: %s", delivery_id, attempt, error)
        else:
            extra = {"response": result.response} if result.response else {}
            recorded = repo.finish(
                delivery_id, result.status, token, provider_id=result.provider_id, last_error="", **extra
            )
        self._announce(delivery_id, delivery)
        return recorded

    def _announce(self, delivery_id: str, delivery: dict[str, str]) -> None:
        self.sent({**(self.store.alerts.delivery(delivery_id) or {}), "alert_id": delivery.get("alert_id")})


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
