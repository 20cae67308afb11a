"""The command line: serve, worker, user, token, scripts, replay, drill report, categories."""

from __future__ import annotations

import csv
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click

from alerts.rules import RuleSet
from crisis_console import delivery
from crisis_console.alert_hooks import AlertHooks, hooks_of, load_rules
from crisis_console.delivery import Deliverer, Senders, Settings
from crisis_console.roles import ROLES
from crisis_console.services.accounts import API_SCOPE, MIN_PASSWORD, OPEN311_SCOPE, Accounts
from crisis_console.services.errors import ServiceError
from crisis_console.store import Store, StoreUnavailable

#: Exit status when Redis cannot be reached.
EXIT_NO_STORE = 2


def fail(message: str, status: int = 1) -> NoReturn:
    """Print one error line and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def open_store_or_exit() -> Store:
    """Return the configured store (no web app needed), or exit 2 naming the URL."""
    from crisis_console.app import open_store

    try:
        return open_store()
    except StoreUnavailable as exc:
        fail(str(exc), EXIT_NO_STORE)


def open_accounts() -> Accounts:
    """Return the account service over the configured store."""
    return Accounts(open_store_or_exit())


#: ``--port``: the console's port, from ``PORT`` like ``make run``, so ``serve`` and ``call`` agree.
port_option = click.option(
    "--port",
    default=5000,
    show_default=True,
    envvar="PORT",
    type=click.IntRange(1, 65535),
    help="The port the console listens on (or PORT, as make run uses).",
)


@click.group()
def cli() -> None:
    """Crisis Console: one real-time console for a contact centre in a declared emergency."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@port_option
@click.option(
    "--only",
    type=click.Choice(["webhooks"]),
    help="Serve only the Twilio webhooks (gunicorn, threaded workers, no Socket.IO).",
)
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="With --only webhooks."
)
@click.option(
    "--threads", default=4, show_default=True, type=click.IntRange(1, 256), help="With --only webhooks."
)
def serve(host: str, port: int, only: str | None, workers: int, threads: int) -> None:
    """Run the web process (Flask-SocketIO on gevent), or with --only webhooks the phone path."""
    if only == "webhooks":
        from crisis_console import serving
        from crisis_console.app import resolve_config
        from crisis_console.store import BadRedisUrl, redis_target

        try:  # here, once: gunicorn's workers would each print a traceback
            redis_target(vars(resolve_config(None)))
        except BadRedisUrl as exc:
            fail(str(exc), EXIT_NO_STORE)
        click.echo(
            f"Crisis Console webhooks on http://{host}:{port}/twilio/ ({workers} workers × {threads} threads)"
        )
        serving.run_webhooks(host, port, workers, threads)
        return
    from alerts.rules import RuleError
    from crisis_console import serving
    from crisis_console.app import create_app, when_store_ready
    from crisis_console.extensions import STORE_EXTENSION
    from crisis_console.localtime import ZoneError
    from crisis_console.store import describe, stop_embedded

    try:
        # An external Redis that is down does not stop the console: it starts degraded (the
        # phone line answers from instance/ivr-state.json, pages say the store is
        # unavailable) and recovers by itself. The embedded server must start, though.
        app = create_app({"REQUIRE_STORE": False})
    except StoreUnavailable as exc:
        fail(str(exc), EXIT_NO_STORE)
    except ZoneError as exc:
        fail(str(exc))
    except RuleError as exc:
        fail(f"alert rules: {exc}")
    store = app.extensions[STORE_EXTENSION]
    where = describe(app.config.get("REDIS_URL"), app.instance_path)
    if not store.ping():
        click.echo(
            f"warning: cannot reach Redis at {where}; starting degraded: the phone line answers "
            "from its last known state and pages say the store is unavailable until Redis is back.",
            err=True,
        )
    when_store_ready("creating the first administrator", lambda: show_first_admin(store))
    start_scheduler(app)
    click.echo(f"Crisis Console on http://{host}:{port}/  (Redis: {where}, prefix {store.keys.prefix!r})")
    serving.run(app, host, port)
    if not app.config.get("REDIS_URL") and stop_embedded(store.redis):
        click.echo(f"Crisis Console stopped; the embedded Redis saved and stopped ({where}).")
    else:
        click.echo("Crisis Console stopped.")


def show_first_admin(store: Store) -> None:
    """Create the first administrator if there is none, and print its password once."""
    created = Accounts(store).ensure_first_admin()
    if created:
        username, password = created
        click.echo("=" * 64)
        click.echo("First run: created an administrator. Sign in and change it:")
        click.echo(f"    username: {username}")
        click.echo(f"    password: {password}")
        click.echo("Change it after signing in: Password, in the page header (/account/password).")
        click.echo("This is shown only once.")
        click.echo("=" * 64)


def start_scheduler(app: Any) -> None:
    """Run the scheduler inside the web process too, so make run needs no worker."""
    from crisis_console import scheduler
    from crisis_console.app import when_store_ready
    from crisis_console.extensions import STORE_EXTENSION, socketio
    from crisis_console.sockets import realtime

    store = app.extensions[STORE_EXTENSION]
    hooks = hooks_of(app)
    socketio.start_background_task(
        scheduler.loop, store, socketio.sleep, **scheduler_callbacks(hooks, realtime.spike_detected)
    )

    def start_delivery() -> None:
        # Making the deliverer creates the queue's consumer group: during an outage, later.
        deliverer = Deliverer(
            store, Senders(Settings.from_config(app.config)), sent=realtime.delivery_changed
        )
        socketio.start_background_task(delivery.loop, deliverer, socketio.sleep)

    when_store_ready("starting alert delivery", start_delivery)


def scheduler_callbacks(hooks: AlertHooks, spiked: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Return the scheduler's callbacks: spikes reach consoles and the alert rules; each tick
    lets the rules check unread pushes and escalations. (Announcement and script changes
    need none: the services announce them to the store's subscribers.)"""
    return {"spiked": lambda spike: spiked(hooks.spike(spike)), "tick": hooks.tick}


@cli.command()
def worker() -> None:
    """Run scheduled work (ending announcements at their end time); safe to run several."""
    import time

    from crisis_console import scheduler
    from crisis_console.app import (
        instance_path,
        message_queue,
        public_channels,
        queue_manager,
        resolve_config,
    )
    from crisis_console.extensions import socketio
    from crisis_console.services.ivr_state import LastKnownState
    from crisis_console.sockets import realtime
    from crisis_console.subscribers import Subscribers

    settings = resolve_config(None)
    zone = zone_or_exit(settings.CRISIS_TIMEZONE)
    store = open_store_or_exit()
    rules = load_rules_or_exit(settings.ALERT_RULES)
    # Emit through the web processes' message queue; this process serves no sockets.
    queue = queue_manager(message_queue(settings, store), store.keys.prefix, write_only=True)
    socketio.init_app(None, client_manager=queue)
    base = settings.PUBLIC_BASE_URL or ""
    hooks = AlertHooks(
        store,
        rules,
        console_url=f"{base}/manager/alerts" if base else "",
        emit=realtime.alert_sent,
        zone=zone,
    )
    deliverer = Deliverer(
        store, Senders(Settings.from_config(vars(settings))), sent=realtime.delivery_changed
    )
    threading.Thread(target=delivery.loop, args=(deliverer, time.sleep), daemon=True, name="delivery").start()
    state = LastKnownState(Path(instance_path()) / "ivr-state.json")
    # Changes the scheduler makes (scheduled starts and ends, expiries) reach every consumer.
    subscribers = Subscribers(
        consoles=realtime,
        hooks=lambda: hooks,
        remember=state.save,
        publishers=public_channels(vars(settings)),
    ).connect(store)
    click.echo(
        f"worker running every {scheduler.INTERVAL} s (prefix {store.keys.prefix!r}, {len(rules.rules)} alert rules)"
    )
    scheduler.loop(store, time.sleep, **scheduler_callbacks(hooks, realtime.spike_detected))
    del subscribers  # kept alive until here: the signals hold receivers weakly


def zone_or_exit(name: str | None) -> ZoneInfo:
    """Return the console's time zone (``CRISIS_TIMEZONE``) or exit with one line naming it."""
    from crisis_console.localtime import ZoneError, zone

    try:
        return zone(name)
    except ZoneError as exc:
        fail(str(exc))


def load_rules_or_exit(folder: str | None) -> RuleSet:
    """Load the alert rules or exit naming the file and line at fault."""
    from alerts.rules import RuleError

    try:
        return load_rules(folder)
    except RuleError as exc:
        fail(f"alert rules: {exc}")


@cli.group()
def alerts() -> None:
    """Alert rules."""


@alerts.command("check")
@click.argument("folder", required=False)
def alerts_check(folder: str | None) -> None:
    """Check the alert rules (default: alerts/rules, or CRISIS_ALERT_RULES) and list them."""
    import os

    rules = load_rules_or_exit(folder or os.environ.get("CRISIS_ALERT_RULES"))
    for rule in rules.rules:
        click.echo(
            f"{rule.id}: {', '.join(rule.triggers)} -> {', '.join(rules.expand(rule.recipients))} by {', '.join(rule.channels)}"
        )
    click.echo(f"{len(rules.rules)} rules, {len(rules.groups)} groups: OK")


@cli.command()
@click.option("--line", "number", required=True, help="The line's phone number, e.g. +16175550311.")
@click.option("--digits", default="", help="Keys the caller presses at the menu, e.g. 2 for Spanish.")
@click.option(
    "--url",
    default=None,
    help="The console's URL (default: PUBLIC_BASE_URL, else http://127.0.0.1:PORT).",
)
@port_option
@click.option("--from", "caller", default="+15555550123", show_default=True, help="The caller's number.")
def call(number: str, digits: str, url: str | None, port: int, caller: str) -> None:
    """Call a line of the running console as Twilio would, and print what the caller hears."""
    import requests

    from crisis_console.app import instance_path, resolve_config
    from crisis_console.config import instance_twilio_token
    from crisis_console.phonecall import PhoneCall

    settings = resolve_config(None)
    token = settings.TWILIO_AUTH_TOKEN or instance_twilio_token(instance_path())
    base = url or settings.PUBLIC_BASE_URL or f"http://127.0.0.1:{port}"
    try:
        PhoneCall(base, token, number, caller).run(digits, say=click.echo)
    except requests.RequestException as exc:
        fail(f"cannot call {base}: {exc}")


@cli.group()
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="The user's role.")
@click.option("--password", help=f"At least {MIN_PASSWORD} characters; prompted for when not given.")
@click.option("--team", default="", help="Team (agents are pushed scripts by team).")
@click.option("--display-name", default="", help="Name shown on pages (defaults to NAME).")
@click.option("--phone", default="", help="Mobile number for SMS alerts, like +16175550100.")
@click.option("--email", default="", help="E-mail address for alerts.")
def user_add(
    name: str, role: str, password: str | None, team: str, display_name: str, phone: str, email: str
) -> None:
    """Create a user."""
    service = open_accounts()
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        created = service.create_user(
            name, role, password, team=team, display_name=display_name, phone=phone, email=email, actor="cli"
        )
    except ServiceError as exc:
        fail(f"{exc.field}: {exc.message}" if exc.field else exc.message)
    click.echo(f"created {created.role} {created.username!r} (id {created.id})")


@user.command("list")
def user_list() -> None:
    """List users."""
    for row in open_accounts().all():
        state = "active" if row.active else "disabled"
        click.echo(f"{row.id:>4}  {row.username:<24} {row.role:<12} {row.team or '-':<16} {state}")


@cli.group()
def scripts() -> None:
    """Manage scripts and the hazard template library."""


@scripts.command("import")
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--event", "event_id", help="Event to create drafts for (default: the only active event).")
@click.option("--hazard", help="Hazard templates to use (default: the event's kind).")
def scripts_import(path: Path | None, event_id: str | None, hazard: str | None) -> None:
    """Check the templates in scripts_library/ (or PATH) and import them as drafts for an event."""
    from crisis_console.services.events import Events
    from crisis_console.services.scripts import Scripts
    from scripts_library.templates import TemplateError, load_templates

    try:
        templates = load_templates(path)
    except TemplateError as exc:
        fail(str(exc))
    click.echo(f"{len(templates)} templates: " + ", ".join(t.key for t in templates))
    store = open_store_or_exit()
    if event_id is None:
        active = Events(store).active()
        if len(active) != 1:
            click.echo(
                "No drafts created: name the event with --event (there is not exactly one active event)."
            )
            return
        event_id = str(active[0].id)
    try:
        imported = Scripts(store).import_templates(event_id, hazard=hazard, folder=path, actor="cli")
    except ServiceError as exc:
        fail(f"{exc.field}: {exc.message}" if exc.field else exc.message)
    for script in imported.created:
        click.echo(f"draft {script.id}: [{script.language}] {script.title}")
    for script in imported.existing:
        click.echo(
            f"skipped [{script.language}]: already imported for event {event_id} as script {script.id} "
            f"({script.state}): {script.title}"
        )
    click.echo(
        f"created {len(imported.created)} drafts for event {event_id}"
        + (f", skipped {len(imported.existing)} already imported" if imported.existing else "")
        + "; they need review and approval before a push."
    )


@cli.command("replay")
@click.argument("csv_path", metavar="CSV", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--speed", default=0.0, show_default=True, help="Times faster than real time; 0 = as fast as possible."
)
@click.option(
    "--shift-to-now",
    is_flag=True,
    help="Move the records to today: the first happens now (at a --speed) or the last does (as fast as possible).",
)
@click.option(
    "--live-from",
    metavar="ISO",
    help="With --shift-to-now: this instant of the file becomes the current hour; what came before is "
    "loaded at once as history, the rest arrives live as the clock reaches it.",
)
@click.option(
    "--map", "mappings", multiple=True, metavar="COLUMN=FIELD", help="Map a CSV column to a complaint field."
)
@click.option(
    "--add-categories/--no-add-categories",
    default=None,
    help="Create unknown categories (default: on for the Boston file).",
)
def replay_command(
    csv_path: Path,
    speed: float,
    shift_to_now: bool,
    live_from: str | None,
    mappings: tuple[str, ...],
    add_categories: bool | None,
) -> None:
    """Feed historical complaints through the real intake path, with a progress bar."""
    from rich.progress import Progress

    from crisis_console import clock, replay

    mapping = None
    if mappings:
        mapping = {}
        for item in mappings:
            column, _, target = item.partition("=")
            if not column or target not in {
                "occurred_at",
                "category",
                "channel",
                "zip",
                "lat",
                "lon",
                "text",
            }:
                fail(
                    f"--map {item!r}: expected COLUMN=FIELD with FIELD one of occurred_at, category, channel, zip, lat, lon, text"
                )
            mapping[column] = target
    live_moment = None
    if live_from:
        if not shift_to_now or speed not in (0, 1):
            fail("--live-from goes with --shift-to-now, at real time (--speed 1 or none)")
        try:
            live_moment = clock.parse_iso(live_from)
        except ValueError:
            fail(f"--live-from {live_from!r}: expected an ISO 8601 time, e.g. 2015-01-27T11:00:00Z")
    try:
        records, boston = replay.read_records(csv_path, mapping)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        fail(str(exc))
    store = open_store_or_exit()
    added = (
        replay.add_missing_categories(store, records)
        if (add_categories or (add_categories is None and boston))
        else 0
    )
    if shift_to_now:
        replay.shift_to_now(records, clock.now(), live_from=live_moment, speed=speed)
    click.echo(
        f"{len(records):,} rows from {csv_path.name}{' (Boston 311 format)' if boston else ''}; {added} categories added"
    )
    with Progress() as bar:
        task = bar.add_task("replaying", total=len(records))
        summary = replay.replay(
            store,
            records,
            speed=speed,
            on_the_clock=shift_to_now and (speed > 0 or live_moment is not None),
            progress=lambda n: bar.advance(task, n),
            sent=trends_published(store),
        )
    click.echo(f"accepted {summary.accepted:,}, rejected {summary.rejected:,}")
    for reason, count in sorted(summary.reasons.items(), key=lambda item: -item[1]):
        click.echo(f"  rejected {count:,}: {reason}")


def trends_published(store: Store) -> Callable[[int], None]:
    """Return how a replay tells open dashboards that complaints were counted: through the web
    processes' message queue (the external Redis or the embedded one; a write-only client of it,
    so this process's own Socket.IO stays untouched)."""
    from crisis_console.app import message_queue, queue_manager, resolve_config
    from crisis_console.sockets import names

    settings = resolve_config(None)
    queue = queue_manager(message_queue(settings, store), settings.CRISIS_KEY_PREFIX, write_only=True)
    return lambda accepted: queue.emit(names.TRENDS_UPDATE, {"accepted": accepted}, namespace=names.DASHBOARD)


@cli.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown to admins).")
@click.option(
    "--open311",
    "open311",
    is_flag=True,
    help="Make an Open311 api_key instead: good only for POST requests.json, not for the API.",
)
def token_create(name: str, label: str, open311: bool) -> None:
    """Print a new API token (or, with --open311, an Open311 api_key) for user NAME.

    It is shown once and stored hashed.
    """
    scope = OPEN311_SCOPE if open311 else API_SCOPE
    try:
        secret = open_accounts().create_token(
            name, label or "created from the command line", actor="cli", scope=scope
        )
    except ServiceError as exc:
        fail(exc.message)
    click.echo(secret)


@cli.group()
def drill() -> None:
    """Exercises (drills): the timing report."""


@drill.command("report")
@click.argument("event_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (as the API returns it).")
def drill_report(event_id: int, as_json: bool) -> None:
    """Print when each milestone of an event (a drill, or a real one) was first reached."""
    import json

    from crisis_console.services.milestones import Milestones

    try:
        report = Milestones(open_store_or_exit()).report(event_id)
    except ServiceError as exc:
        fail(exc.message)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    from crisis_console.app import resolve_config

    for line in report_lines(report, zone_or_exit(resolve_config(None).CRISIS_TIMEZONE)):
        click.echo(line)


def report_lines(report: dict[str, Any], zone: ZoneInfo | None = None) -> list[str]:
    """Return the timing report as a plain-text table, times in ``zone`` (default UTC)."""
    from crisis_console.localtime import format_time
    from crisis_console.services.milestones import MILESTONES, human_duration

    zone = zone or ZoneInfo("UTC")
    event = report["event"]
    if report["exercise"]:
        title = f"Drill timing report: EXERCISE — {event['name']}"
    else:
        title = f"Event timing report: {event['name']}"
    width = max(len(label) for label in MILESTONES.values())
    lines = [title, f"event {event['id']} · {event['status']}", ""]
    stamps = [format_time(row["at"], zone, "seconds") for row in report["milestones"]]
    column = max([len("At"), *(len(at) for at in stamps)])
    lines.append(f"{'Milestone':<{width}}  {'At':<{column}}  After declaration")
    lines.append(f"{'-' * width}  {'-' * column}  {'-' * 17}")
    for row, at in zip(report["milestones"], stamps, strict=True):
        lines.append(f"{row['label']:<{width}}  {at:<{column}}  {human_duration(row['after_seconds'])}")
    if report["missing"]:
        lines.append("")
        lines.append("Not reached: " + ", ".join(MILESTONES[name] for name in report["missing"]))
    return lines


@cli.group()
def categories() -> None:
    """Manage the complaint-category catalogue."""


@categories.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def categories_import(path: Path) -> None:
    """Create or update categories from a city's Open311 GeoReport v2 services.json (or .xml)."""
    import redis
    from rich.console import Console
    from rich.progress import Progress

    from crisis_console.services.catalogue import CatalogueFileError, import_services, read_services

    try:
        total = len(read_services(path))
    except CatalogueFileError as exc:
        fail(str(exc))
    store = open_store_or_exit()
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"importing {path.name}", total=total)
            summary = import_services(store, path, actor="cli", progress=lambda n: bar.advance(task, n))
    except redis.RedisError as exc:
        fail(f"Redis stopped answering during the import: {exc}", EXIT_NO_STORE)
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"{total} services in {path.name}: created {len(summary.created)}, updated {len(summary.updated)}, "
        f"unchanged {len(summary.unchanged)}, rejected {len(summary.errors)}"
    )
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)
    if summary.errors:
        sys.exit(1)
