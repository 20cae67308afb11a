"""Alerts: rule files, trigger evaluation, durable delivery over Twilio, escalation, the closed loop."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse

from alerts.evaluate import Trigger, evaluate, matches, unread_push
from alerts.rules import RuleError, load_folder, load_text
from crisis_console import clock
from crisis_console.alert_hooks import AlertHooks, hooks_of, load_rules
from crisis_console.delivery import Deliverer, Senders, Settings
from crisis_console.roles import Role
from crisis_console.services.categories import Categories
from crisis_console.services.events import Events
from crisis_console.services.pushes import Pushes
from crisis_console.services.scripts import Scripts
from tests.helpers import quiet
from tests.servers import free_port

RULE = """
[groups]
eoc = ["user:duty", "phone:+16175550100"]

[[rule]]
id = "big-spike"
trigger = "spike.detected"
during_event = true
min_score = 6
categories = ["power_outage"]
recipients = ["group:eoc"]
channels = ["console", "sms"]
message = "{exercise}Spike in {category}{area}: {observed} vs {expected}"

  [[rule.escalation]]
  after_minutes = 10
  recipients = ["role:admin"]
  channels = ["sms"]

[[rule]]
id = "declared"
trigger = ["event.declared", "event.stood_down"]
recipients = ["role:stakeholder"]
channels = ["console", "sms"]
message = "{exercise}{name} {what}"
quiet_minutes = 0

[[rule]]
id = "unread"
trigger = "push.unacknowledged"
after_minutes = 5
below_share = 0.9
recipients = ["team:supervisors"]
channels = ["sms"]
message = "Only {acknowledged} of {audience_size} read {title}. Pending: {pending}"
"""


class FakeTwilio(HttpClient):
    """The SDK's HTTP client, answering Messages.create and the Messages list (by To and From)
    without a network; can fail first."""

    def __init__(self, failures: int = 0):
        super().__init__(logging.getLogger("fake-twilio"), False)
        self.sent: list[dict[str, str]] = []
        self.failures = failures

    def request(
        self,
        method,
        uri,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ):
        if self.failures:
            self.failures -= 1
            return TwilioResponse(
                503, json.dumps({"code": 20500, "message": "Service unavailable", "status": 503})
            )
        if method == "GET":
            wanted = params or {}
            found = [
                {"sid": f"SM{n:032d}", "to": m.get("To"), "from": m.get("From"), "body": m.get("Body")}
                for n, m in enumerate(self.sent, start=1)
                if all(m.get(k) == wanted[k] for k in ("To", "From") if k in wanted)
            ]
            return TwilioResponse(200, json.dumps({"messages": found[::-1], "next_page_uri": None}))
        body = {k: v if isinstance(v, str) else v[0] for k, v in (data or {}).items()}
        self.sent.append({"uri": uri, **body})
        sid = f"SM{len(self.sent):032d}"
        return TwilioResponse(
            201, json.dumps({"sid": sid, "status": "queued", "to": body.get("To"), "body": body.get("Body")})
        )


@pytest.fixture
def rules_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "eoc.toml").write_text(RULE)
    return folder


@pytest.fixture
def hooks(app, store, rules_folder) -> AlertHooks:
    """The app's alert hooks, with the test rules instead of the shipped ones."""
    sent: list[dict] = []
    hooks = AlertHooks(store, load_folder(rules_folder), emit=sent.append)
    hooks.sent_to_consoles = sent  # type: ignore[attr-defined]
    app.extensions["crisis_alert_hooks"] = hooks
    return hooks


def settings(twilio: FakeTwilio) -> Settings:
    return Settings(
        twilio_sid="AC" + "0" * 32,
        twilio_token="secret",
        twilio_from="+16175550311",
        public_base_url="http://localhost",
        twilio_http=twilio,
    )


# --- rule files --------------------------------------------------------------------------------


def test_the_shipped_rules_load():
    """alerts/rules is valid: every rule names known triggers, channels and groups."""
    rules = load_rules(None)
    assert {"spike-to-eoc", "unread-push-to-supervisors"} <= {r.id for r in rules.rules}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[[rule]]\nid = "a"\ntrigger = "spike"\n', 3, "unknown trigger 'spike'"),
        ('[[rule]]\nid = "a"\ntrigger = "spike.detected"\nrecipients = ["boss"]\n', 4, "recipient 'boss'"),
        (
            '[[rule]]\nid = "a"\ntrigger = "event.declared"\nrecipients = ["role:manager"]\nchannels = ["sms"]\n'
            'message = "{category} spiked"\n',
            6,
            "{category}",
        ),
        (
            '[[rule]]\nid = "a"\ntrigger = "event.declared"\nrecipients = ["role:manager"]\nchannels = ["fax"]\n',
            5,
            "channels",
        ),
        (
            '[[rule]]\nid = "a"\ntrigger = "event.declared"\nrecipent = ["role:manager"]\n',
            4,
            "unknown key 'recipent'",
        ),
        ("[[rule]\n", 1, "not valid TOML"),
        (
            '[[rule]]\nid = "a"\ntrigger = "event.declared"\nrecipients = ["phone:555"]\n',
            4,
            "E.164",
        ),
    ],
)
def test_rule_mistakes_name_file_and_line(text, line, words):
    with pytest.raises(RuleError) as caught:
        load_text(text, "alerts/rules/bad.toml")
    assert caught.value.path == "alerts/rules/bad.toml" and caught.value.line == line, str(caught.value)
    assert words in str(caught.value)


def test_unknown_group_and_duplicate_ids_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text(RULE.replace('"group:eoc"]', '"group:nobody"]', 1))
    with pytest.raises(RuleError, match="unknown group 'nobody'"):
        load_folder(tmp_path)
    (tmp_path / "a.toml").write_text(RULE)
    (tmp_path / "b.toml").write_text(
        RULE.split("[[rule]]")[0].replace("eoc", "other") + "[[rule]]" + RULE.split("[[rule]]")[1]
    )
    with pytest.raises(RuleError, match="rule id 'big-spike' is also used"):
        load_folder(tmp_path)


# --- evaluation (pure) -----------------------------------------------------------------------


def test_spike_rules_filter_on_score_category_and_event(rules_folder):
    rules = load_folder(rules_folder)
    rule = rules.for_trigger("spike.detected")[0]
    spike = Trigger(
        "spike.detected",
        "spike:power_outage:02124",
        {"category": "Power outage"},
        score=9,
        category="power_outage",
        category_name="Power outage",
    )
    assert matches(rule, spike, event_active=True)
    assert not matches(rule, spike, event_active=False)  # only during an event
    weak = Trigger("spike.detected", "s", score=5, category="power_outage")
    assert not matches(rule, weak, event_active=True)
    other = Trigger("spike.detected", "s", score=9, category="no_heat")
    assert not matches(rule, other, event_active=True)
    drill = Trigger(
        "spike.detected",
        "s",
        {"category": "Power outage", "observed": 40, "expected": 3.0, "area": " in 02124"},
        exercise=True,
        score=9,
        category="power_outage",
    )
    [planned] = evaluate(rules, drill, event_active=True)
    assert planned.message == "EXERCISE — Spike in Power outage in 02124: 40 vs 3"
    assert planned.recipients == ("user:duty", "phone:+16175550100") and planned.quiet_seconds == 30 * 60


def test_unread_push_fires_only_after_the_delay_and_below_the_share(rules_folder):
    rule = load_folder(rules_folder).for_trigger("push.unacknowledged")[0]
    now = clock.now()
    push = {
        "id": 7,
        "created_at": now - timedelta(minutes=6),
        "audience_size": 10,
        "acknowledged": 8,
        "pending": ["Ana", "Bo"],
        "title": "Shelters",
    }
    trigger = unread_push(push, rule, now)
    assert trigger is not None and trigger.values["pending"] == "Ana, Bo" and trigger.subject == "push:7"
    assert unread_push({**push, "created_at": now - timedelta(minutes=4)}, rule, now) is None
    assert unread_push({**push, "acknowledged": 9}, rule, now) is None


# --- raising, delivering, retrying -------------------------------------------------------------


def declare(store, *, exercise: bool = False, kind: str = "power_outage"):
    """Declare an event as the scene of a test (its own declaration alert is not under test)."""
    events = Events(quiet(store))
    event = events.create(
        {
            "name": "Grid failure",
            "kind": kind,
            "severity": "severe",
            "areas": ["Dorchester"],
            "exercise": exercise,
        },
        actor="maria",
    )
    return events.declare(event.id, actor="maria")


def test_a_spike_texts_the_duty_officer_once_and_the_status_callback_lands(app, store, hooks, auth, twilio):
    """Raised once per quiet period; SMS through the SDK (injected HTTP client), then Twilio's
    signed status callback marks it delivered."""
    auth.make_user(Role.MANAGER, username="duty")
    auth.accounts.set_contact(auth.accounts.by_name("duty").id, "+1 617 555 0199", "", actor="test")
    declare(store)
    spike = {
        "category": "power_outage",
        "observed": 40,
        "expected": 3.0,
        "score": 12.5,
        "since": clock.iso(),
        "zip": "02124",
    }
    Categories(store).create({"code": "power_outage", "name": "Power outage"})
    enriched = hooks.spike(spike)
    assert [s["hazard"] for s in enriched["suggestions"]] == ["extreme_heat", "hurricane", "power_outage"]
    hooks.spike(spike)  # the next pass sees it again: no second alert
    [alert] = hooks.alerting.recent()
    assert hooks.sent_to_consoles[0]["id"] == alert["id"]
    assert alert["message"].startswith("Spike in Power outage in 02124: 40 vs 3")
    by_channel = {(d["channel"], d["to"]): d["status"] for d in alert["deliveries"]}
    assert by_channel == {
        ("console", "managers' consoles"): "delivered",
        ("sms", "+16175550199"): "queued",
        ("sms", "+16175550100"): "queued",
    }

    fake = FakeTwilio()
    Deliverer(store, Senders(settings(fake)), "w1").run_once()
    assert sorted(m["To"] for m in fake.sent) == ["+16175550100", "+16175550199"]
    assert fake.sent[0]["StatusCallback"] == "http://localhost/twilio/sms/status"
    assert fake.sent[0]["uri"].endswith("/Messages.json") and "Spike in Power outage" in fake.sent[0]["Body"]
    sid = "SM" + "1".rjust(32, "0")
    assert (
        twilio.post("/twilio/sms/status", {"MessageSid": sid, "MessageStatus": "delivered"}).status_code
        == 204
    )
    assert (
        twilio.post(
            "/twilio/sms/status", {"MessageSid": sid, "MessageStatus": "delivered"}, signature="forged"
        ).status_code
        == 403
    )
    statuses = sorted(d["status"] for d in hooks.alerting.get(alert["id"])["deliveries"])
    assert statuses == ["delivered", "delivered", "sent"]


def test_failed_sends_are_retried_with_backoff_and_never_duplicated_across_a_restart(store, hooks):
    """Twilio down → parked for a retry; a worker that read entries and died → another takes
    them over; a delivery recorded as sent is not sent again."""
    declare(store)  # 'declared' rule: stakeholders by SMS
    from crisis_console.services.accounts import Accounts

    for name, phone in (("sam", "+16175550101"), ("kim", "+16175550102")):
        Accounts(store).create_user(name, Role.STAKEHOLDER, "correct horse battery", phone=phone)
    Events(store).stand_down(Events(store).active()[0].id, actor="maria")
    hooks.event_changed(Events(store).list()[0])
    [alert] = hooks.alerting.recent()
    sms = [d for d in alert["deliveries"] if d["channel"] == "sms"]
    assert len(sms) == 2

    # A worker reads the queue and dies before sending anything.
    store.alerts.ensure_group()
    assert len(store.alerts.read("dead-worker", 10, None)) == 2
    fake = FakeTwilio(failures=1)
    survivor = Deliverer(store, Senders(settings(fake)), "w2", claim_idle_ms=0)
    survivor.run_once()
    assert len(fake.sent) == 1  # one send failed (503) and was parked, one went
    parked = [d for d in hooks.alerting.get(alert["id"])["deliveries"] if d["status"] == "queued"]
    assert (len(parked) == 1 and "503" in parked[0]["last_error"]) or "Unavailable" in parked[0]["last_error"]
    survivor.run_once()
    assert len(fake.sent) == 1  # not due yet (backoff)
    assert store.alerts.requeue_due(clock.now().timestamp() + 60) == 1
    survivor.run_once()
    assert sorted(m["To"] for m in fake.sent) == ["+16175550101", "+16175550102"]
    # A redelivered entry of a sent delivery (a worker that sent but died before XACK) is not resent.
    store.alerts.add_deliveries(alert["id"], [])
    store.redis.xadd(store.keys.delivery_queue(), {"delivery_id": sms[0]["id"]})
    survivor.run_once()
    assert len(fake.sent) == 2
    assert store.alerts.pending_count() == 0


def test_unread_push_alerts_supervisors_with_the_names_pending(store, hooks, auth):
    """Fewer than 90 % acknowledged after 5 minutes → the floor supervisors are told who."""
    for name in ("lead1",):
        auth.accounts.create_user(
            name, Role.MANAGER, "correct horse battery", team="supervisors", phone="+16175550150"
        )
    agents = [auth.accounts.create_user(f"agent{i}", Role.AGENT, "correct horse battery") for i in range(3)]
    writer, reviewer = auth.make_user(Role.MANAGER), auth.make_user(Role.MANAGER)
    scripts = Scripts(store)
    script = scripts.create(
        {"title": "Shelters open", "topic": "Safety", "body": "Go to the school."}, actor=writer.username
    )
    scripts.act(script.id, "submit", actor=writer.username)
    scripts.act(script.id, "approve", actor=reviewer.username)
    push = Pushes(store).push(script.id, "all", actor=writer.username)
    Pushes(store).receipt(push["id"], agents[0].id, acknowledged=True)
    assert hooks.tick(clock.now() + timedelta(minutes=4)) == []
    [alert] = hooks.tick(clock.now() + timedelta(minutes=6))
    assert alert["message"].startswith("Only 1 of 3 read Shelters open. Pending:")
    assert "agent1" in alert["message"] and "agent0" not in alert["message"]
    assert [d["to"] for d in alert["deliveries"]] == ["+16175550150"]
    assert hooks.tick(clock.now() + timedelta(minutes=7)) == []  # once per push


def test_escalation_steps_until_acknowledged(store, hooks, auth, client):
    auth.accounts.create_user("root2", Role.ADMIN, "correct horse battery", phone="+16175550160")
    declare(store)
    hooks.spike(
        {"category": "power_outage", "observed": 40, "expected": 3.0, "score": 12.5, "since": clock.iso()}
    )
    [alert] = hooks.alerting.recent()
    assert hooks.tick(clock.now() + timedelta(minutes=5)) == []
    [escalated] = hooks.tick(clock.now() + timedelta(minutes=11))
    assert [d["to"] for d in escalated["deliveries"] if d["step"]] == ["+16175550160"]
    assert hooks.tick(clock.now() + timedelta(minutes=30)) == []  # the only step was taken
    auth.login_as(Role.MANAGER)
    response = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=auth.csrf_headers())
    assert response.status_code == 200 and response.json["acknowledged_by"]
    assert client.post("/api/v1/alerts/999/ack", headers=auth.csrf_headers()).status_code == 404
    page = client.get("/manager/alerts").get_data(as_text=True)
    assert "Spike in power_outage" in page and "root2" in page and "escalation after 10 min" in page


def test_a_spike_suggests_drafts_and_one_click_makes_them(store, hooks, auth, client, app):
    """A spike on a category a hazard template answers offers the script and the announcement;
    drafting fills them from the event and they still await review."""
    auth.login_as(Role.MANAGER)
    declare(store, exercise=True, kind="power_outage")
    from crisis_console.services.lines import Lines

    Lines(store).create(
        {
            "number": "+16175550999",
            "name": "Drill line",
            "route": {"type": "dial", "number": "+16175550100"},
            "languages": ["en", "es"],
            "test": True,
        },
        actor="admin",
    )
    listed = client.get("/api/v1/suggestions?category=downed_wires").json["suggestions"]
    assert {s["hazard"] for s in listed} == {"hurricane", "power_outage"}
    made = client.post(
        "/api/v1/suggestions/draft",
        json={"kind": "script", "hazard": "power_outage"},
        headers=auth.csrf_headers(),
    )
    assert made.status_code == 201 and {s["state"] for s in made.json["scripts"]} == {"draft"}
    assert "Grid failure" in made.json["scripts"][0]["title"]
    spoken = client.post(
        "/api/v1/suggestions/draft",
        json={"kind": "announcement", "hazard": "power_outage"},
        headers=auth.csrf_headers(),
    )
    assert spoken.status_code == 201, spoken.json
    assert (
        spoken.json["announcement"]["state"] == "draft"
        and "Grid failure" in spoken.json["announcement"]["messages"]["en"]
    )
    assert "utility_name" in spoken.json["unfilled"]
    bad = client.post(
        "/api/v1/suggestions/draft",
        json={"kind": "poem", "hazard": "power_outage"},
        headers=auth.csrf_headers(),
    )
    assert bad.status_code == 422 and bad.json["error"]["field"] == "kind"


def test_declaring_through_the_api_raises_the_alert(store, hooks, auth, client):
    auth.make_user(Role.STAKEHOLDER)
    auth.login_as(Role.MANAGER)
    event = client.post(
        "/api/v1/events",
        json={"name": "Nor'easter", "kind": "winter_storm", "severity": "severe"},
        headers=auth.csrf_headers(),
    ).json
    assert (
        client.post(f"/api/v1/events/{event['id']}/declare", headers=auth.csrf_headers()).status_code == 200
    )
    alerts = client.get("/api/v1/alerts").json["alerts"]
    assert [a["message"] for a in alerts] == ["Nor'easter declared"]
    texts = [d for d in alerts[0]["deliveries"] if d["channel"] == "sms"]
    # Nobody has a mobile number on file: each text is skipped (neutral), never a red failure.
    assert texts and all(d["status"] == "skipped" and "no mobile number" in d["last_error"] for d in texts)
    assert alerts[0]["status_counts"].get("failed", 0) == 0
    page = client.get("/manager/alerts").get_data(as_text=True)
    assert "badge--neutral" in page and ">skipped<" in page and "badge--off" not in page
    assert "an administrator can add it on Users" in page
    assert hooks_of(client.application) is hooks


WEBHOOK_AND_EMAIL = """
[[rule]]
id = "outward"
trigger = "event.declared"
recipients = ["email:eoc@city.example", "role:stakeholder"]
channels = ["webhook", "email"]
webhook_url = "https://alerting.county.example/hooks/311"
message = "{exercise}{name} {what}"
"""


class FakeHttp:
    """A requests.Session stand-in recording the webhook's POSTs."""

    def __init__(self, status: int = 200):
        self.posts: list[tuple[str, dict]] = []
        self.headers: list[dict] = []
        self.status = status

    def post(self, url: str, json: dict, timeout: float, headers: dict | None = None):
        import requests

        self.posts.append((url, json))
        self.headers.append(headers or {})
        response = requests.Response()
        response.status_code = self.status
        return response


class RecordingHandler:
    """An SMTP server's handler that keeps what it is sent."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def test_webhook_and_email_channels(store, tmp_path, auth):
    """The webhook gets the alert as JSON; e-mail goes to a real SMTP server when configured, and
    the delivery says so when it is not; a 4xx from the webhook is not retried."""
    (tmp_path / "out.toml").write_text(WEBHOOK_AND_EMAIL)
    hooks = AlertHooks(store, load_folder(tmp_path))
    auth.accounts.create_user("sam", Role.STAKEHOLDER, "correct horse battery", email="sam@city.example")
    hooks.event_changed(declare(store, exercise=True))
    mailbox = RecordingHandler()
    port = free_port()
    server = Controller(mailbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        http = FakeHttp()
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port, http=http)
        Deliverer(store, Senders(settings), "w").run_once()
    finally:
        server.stop()
    sent_mail = [message_from_bytes(envelope.content) for envelope in mailbox.envelopes]
    assert sorted(rcpt for envelope in mailbox.envelopes for rcpt in envelope.rcpt_tos) == [
        "eoc@city.example",
        "sam@city.example",
    ]
    [(url, body)] = http.posts
    assert url == "https://alerting.county.example/hooks/311" and body["exercise"] is True
    assert body["message"] == "EXERCISE — Grid failure declared"
    assert sorted(m["To"] for m in sent_mail) == ["eoc@city.example", "sam@city.example"]
    assert sent_mail[0]["Subject"].startswith("EXERCISE")

    # Each delivery names itself the same way on every attempt, so a receiver can deduplicate.
    [alert] = hooks.alerting.recent()
    ids = {d["channel"] + ":" + d["to"]: d["id"] for d in alert["deliveries"]}
    assert http.headers == [{"Idempotency-Key": store.keys.delivery(ids["webhook:" + url])}]
    assert sorted(m["Message-ID"] for m in sent_mail) == sorted(
        "<" + store.keys.delivery(ids[f"email:{to}"]).replace(":", ".") + "@localhost>"
        for to in ("eoc@city.example", "sam@city.example")
    )
    assert {d["status"] for d in alert["deliveries"]} == {"delivered", "sent"}

    hooks.event_changed(declare(store))
    Deliverer(store, Senders(Settings(http=FakeHttp(404))), "w").run_once()
    latest = hooks.alerting.recent()[0]
    errors = {d["channel"]: (d["status"], d["last_error"]) for d in latest["deliveries"]}
    assert errors["webhook"] == ("failed", "the webhook answered 404")
    assert errors["email"] == ("failed", "e-mail is not configured (SMTP_HOST)")


def test_rules_are_checked_from_the_command_line_and_at_start_up(runner, tmp_path, monkeypatch):
    """``alerts check`` lists the rules or names the mistake; ``serve`` refuses bad rules."""
    from crisis_console.cli import cli

    shipped = runner.invoke(cli, ["alerts", "check"])
    assert shipped.exit_code == 0 and "OK" in shipped.output and "spike-to-eoc" in shipped.output
    (tmp_path / "bad.toml").write_text('[[rule]]\nid = "x"\ntrigger = "spike"\n')
    bad = runner.invoke(cli, ["alerts", "check", str(tmp_path)])
    assert (
        bad.exit_code == 1 and f"{tmp_path / 'bad.toml'}:3" in bad.output and "unknown trigger" in bad.output
    )
    monkeypatch.setenv("CRISIS_ALERT_RULES", str(tmp_path))
    refused = runner.invoke(cli, ["serve", "--port", "1"])
    assert refused.exit_code == 1 and "alert rules:" in refused.output and "Traceback" not in refused.output


def test_stakeholders_see_notices_on_the_dashboard_without_who_was_texted(app, auth, client):
    """With the shipped rules, a declaration reaches stakeholders' dashboards live (message only)."""
    from crisis_console.extensions import socketio as server_socketio
    from crisis_console.sockets import names

    stakeholder = auth.make_user(Role.STAKEHOLDER)
    auth.accounts.set_contact(stakeholder.id, "+16175550177", "", actor="test")
    dashboard = server_socketio.test_client(
        app, namespace=names.DASHBOARD, auth={"token": auth.accounts.create_token(stakeholder.username)}
    )
    assert dashboard.is_connected(names.DASHBOARD)
    dashboard.get_received(names.DASHBOARD)
    auth.login_as(Role.MANAGER)
    body = {"name": "Heat wave", "kind": "extreme_heat", "severity": "moderate", "areas": ["Mattapan"]}
    event = client.post("/api/v1/events", json=body, headers=auth.csrf_headers()).json
    client.post(f"/api/v1/events/{event['id']}/declare", headers=auth.csrf_headers())
    [notice] = [
        m["args"][0]["alert"]
        for m in dashboard.get_received(names.DASHBOARD)
        if m["name"] == names.ALERT_SENT
    ]
    assert notice["message"] == "Heat wave (moderate) declared. Areas: Mattapan."
    assert set(notice) == {"id", "message", "created_at", "exercise"}
    auth.logout()
    auth.login(stakeholder.username)
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Heat wave (moderate) declared." in page and "+16175550177" not in page


def test_two_spikes_of_one_hazard_offer_its_draft_once_then_link_the_draft(store, auth, client):
    """Spikes in two categories of one hazard offer "Draft script" once; once drafted, the
    console links the draft instead of offering another."""
    import re

    from crisis_console.services.intake import Intake

    auth.login_as(Role.MANAGER)
    declare(store)
    for name in ("Wires down", "Lights out"):
        Categories(store).create({"name": name, "hazards": ["power_outage"]}, actor="test")
    now = clock.now()
    records = [
        {"category": name, "occurred_at": clock.iso(now - timedelta(minutes=m % 20))}
        for name in ("wires down", "lights out")
        for m in range(30)
    ]
    assert Intake(store).submit(records, channel="phone", source="test")["accepted"] == 60

    def offers() -> tuple[int, list[str]]:
        page = client.get("/manager").get_data(as_text=True)
        spikes = page[page.index('id="spikes"') : page.index('id="spikes-empty"')]
        assert spikes.count('class="spike"') >= 2
        drafts = re.findall(r'data-hazard="power_outage">.*?</div>', spikes, re.S)
        return sum(d.count(">Draft script<") for d in drafts), re.findall(
            r'href="/manager/scripts/(\d+)"', spikes
        )

    assert offers() == (1, [])
    made = client.post(
        "/api/v1/suggestions/draft",
        json={"kind": "script", "hazard": "power_outage"},
        headers=auth.csrf_headers(),
    )
    assert made.status_code == 201
    count, links = offers()
    assert count == 0 and set(links) == {str(s["id"]) for s in made.json["scripts"]}
    again = client.post(
        "/api/v1/suggestions/draft",
        json={"kind": "script", "hazard": "power_outage"},
        headers=auth.csrf_headers(),
    )
    assert again.status_code == 200 and again.json["scripts"] == [] and again.json["id"] == made.json["id"]


def test_numbers_that_texted_stop_are_never_texted_by_alerts(store, hooks, auth, client, twilio):
    """An opted-out number's delivery is skipped with the reason (neutral, not a failure),
    whether it opted out before the alert was raised or while its text waited in the queue;
    START makes it reachable again."""
    from crisis_console.services.accounts import Accounts

    for name, phone in (("sam", "+1 617 555 0101"), ("kim", "+16175550102"), ("lee", "+16175550103")):
        Accounts(store).create_user(name, Role.STAKEHOLDER, "correct horse battery", phone=phone)

    def texts(number: str, body: str) -> None:
        reply = twilio.post("/twilio/sms", {"From": number, "To": "+16175550311", "Body": body})
        assert reply.status_code == 200

    texts("+16175550101", "STOP")
    event = declare(store)
    hooks.event_changed(event)
    [alert] = hooks.alerting.recent()
    sms = {d["username"]: d for d in alert["deliveries"] if d["channel"] == "sms"}
    assert sms["sam"]["status"] == "skipped" and sms["sam"]["skip_reason"] == "opted_out"
    assert "opted out" in sms["sam"]["last_error"]
    assert (sms["kim"]["status"], sms["lee"]["status"]) == ("queued", "queued")

    texts("+16175550102", "unsubscribe")  # after the alert was raised, before the worker sends
    fake = FakeTwilio()
    Deliverer(store, Senders(settings(fake)), "w1").run_once()
    assert [m["To"] for m in fake.sent] == ["+16175550103"]
    after = {d["username"]: d for d in hooks.alerting.get(alert["id"])["deliveries"] if d["channel"] == "sms"}
    assert (after["kim"]["status"], after["kim"]["skip_reason"]) == ("skipped", "opted_out")
    assert after["lee"]["status"] == "sent" and after["lee"]["skip_reason"] is None
    assert hooks.alerting.get(alert["id"])["status_counts"].get("failed", 0) == 0

    auth.login_as(Role.MANAGER)
    page = client.get("/manager/alerts").get_data(as_text=True)
    assert "opted out of texts" in page and "by texting START" in page
    assert "an administrator can add it on Users" not in page

    texts("+16175550101", "START")
    Events(store).stand_down(event.id, actor="maria")
    hooks.event_changed(Events(store).require(event.id))  # raised once, by whichever comes first
    closed = hooks.alerting.recent()[0]
    assert closed["message"].endswith("stood down")
    statuses = {d["username"]: d["status"] for d in closed["deliveries"] if d["channel"] == "sms"}
    assert statuses == {"sam": "queued", "kim": "skipped", "lee": "queued"}
