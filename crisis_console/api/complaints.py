"""API routes for categories, complaints and trends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, jsonify, request
from flask_login import current_user

from crisis_console import clock, localtime
from crisis_console.api import bp
from crisis_console.api.body import json_object
from crisis_console.auth.roles import dashboard_readers, roles_required, signed_in
from crisis_console.csv_safety import to_csv
from crisis_console.extensions import store
from crisis_console.roles import Role
from crisis_console.services import trends
from crisis_console.services.categories import Categories
from crisis_console.services.errors import ValidationError
from crisis_console.services.intake import FUTURE_SKEW, Intake
from crisis_console.sockets import realtime


@bp.route("/categories")
@signed_in
def list_categories() -> Any:
    """List the active complaint categories (``?status=all``: retired and merged ones too)."""
    status = request.args.get("status", "active")
    if status not in ("active", "all"):
        raise ValidationError("status must be active or all.", field="status")
    listed = Categories(store()).list(include_inactive=status == "all")
    return jsonify({"categories": [c.public() for c in listed]})


@bp.route("/categories", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def create_category() -> Any:
    """Add a category ``{code?, name, aliases?, open311_code?, hazards?}``."""
    return jsonify(Categories(store()).create(json_object(), actor=current_user.username).public()), 201


@bp.route("/categories/<code>", methods=["PATCH"])
@roles_required(Role.MANAGER, Role.ADMIN)
def update_category(code: str) -> Any:
    """Change a category's name, aliases, Open311 code or hazards."""
    return jsonify(Categories(store()).update(code, json_object(), actor=current_user.username).public())


@bp.route("/categories/<code>/retire", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def retire_category(code: str) -> Any:
    """Stop offering and matching a category for new contacts (its history stays)."""
    return jsonify(Categories(store()).retire(code, actor=current_user.username).public())


@bp.route("/categories/<code>/restore", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def restore_category(code: str) -> Any:
    """Offer and match a retired category again."""
    return jsonify(Categories(store()).restore(code, actor=current_user.username).public())


@bp.route("/categories/<code>/merge", methods=["POST"])
@roles_required(Role.MANAGER, Role.ADMIN)
def merge_category(code: str) -> Any:
    """Merge a category ``{into}``: its names and counts, history included, go to the kept one."""
    kept = Categories(store()).merge(code, json_object(), actor=current_user.username)
    return jsonify(kept.public())


@bp.route("/complaints", methods=["POST"])
@roles_required(Role.AGENT, Role.MANAGER)
def post_complaints() -> Any:
    """Accept one complaint or ``{"complaints": [...]}``; answer which were accepted and rejected."""
    data = json_object()
    batch = "complaints" in data
    if batch and not isinstance(data["complaints"], list):
        raise ValidationError("complaints must be a list of complaint objects.", field="complaints")
    records = data["complaints"] if batch else [data]
    intake = Intake(store())
    result = intake.submit(
        records, channel="import" if batch else "phone", source=f"api:{current_user.username}"
    )
    if not batch and result["rejected"]:
        error = result["rejected"][0]["error"]
        raise ValidationError(error["message"], field=error["field"], code=error["code"])
    if result["accepted"]:
        realtime.trends_changed(result["accepted"])
    answer: dict[str, Any] = {"accepted": result["accepted"], "rejected": result["rejected"]}
    if not batch and result["accepted"]:
        # Say what a forgivingly matched name was counted as ("stret light out" → the category).
        code = result["categories"][0]
        answer.update(category=code, category_name=intake.name_of(code))
    return jsonify(answer), 201


@bp.route("/trends")
@dashboard_readers
def get_trends() -> Any:
    """Counts per bucket per category: ``?window=60m&bucket=1m&category=…&zip=…&at=ISO``."""
    args = request.args
    return jsonify(
        trends.series(
            store(),
            window=args.get("window", "60m"),
            bucket=args.get("bucket", "1m"),
            at=args.get("at") or None,
            category=args.get("category") or None,
            zip_code=args.get("zip") or None,
        )
    )


@bp.route("/trends/spikes")
@signed_in  # not a share link's viewer: the dashboard does not read it
def get_spikes() -> Any:
    """Spikes as the detector saw them: ``?window=60m&at=ISO`` (default now)."""
    return jsonify(
        trends.spikes_at(store(), window=request.args.get("window", "60m"), at=request.args.get("at") or None)
    )


#: Most records one CSV export carries.
MAX_EXPORT = 50_000
RECORD_COLUMNS = ("id", "occurred_at", "received_at", "category", "channel", "zip", "lat", "lon", "text")
#: How far Redis's clock (the stream's ids) may be behind this server's when exporting.
STREAM_CLOCK_MARGIN = timedelta(minutes=15)
#: The export's columns: the stored (ISO 8601, UTC) times for programs, then the time of the
#: contact as a spreadsheet reads it (local, 24-hour) with the zone's abbreviation.
RECORD_HEADER = ("id", "occurred_at", "occurred_local", "time_zone", *RECORD_COLUMNS[2:])


def csv_response(rows: list[list[Any]], filename: str, numeric: tuple[str, ...] = ()) -> Response:
    """Return rows (header first) as a CSV download no spreadsheet runs as formulas.

    ``numeric`` names the columns that hold numbers, which stay numbers (see csv_safety).
    """
    return Response(
        to_csv(rows, numeric),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/trends/movers")
@dashboard_readers
def get_movers() -> Any:
    """Categories furthest above their usual level: ``?window=60m&at=ISO``."""
    return jsonify(
        trends.movers_at(store(), window=request.args.get("window", "60m"), at=request.args.get("at") or None)
    )


@bp.route("/trends.csv")
@signed_in  # not a share link's viewer: the dashboard does not read it
def trends_csv() -> Response:
    """The counts of GET /trends as CSV: one row per bucket and category."""
    args = request.args
    result = trends.series(
        store(),
        window=args.get("window", "24h"),
        bucket=args.get("bucket", "1h"),
        at=args.get("at") or None,
        category=args.get("category") or None,
        zip_code=args.get("zip") or None,
    )
    zone = current_zone()
    rows: list[list[Any]] = [["bucket_start", "local_time", "time_zone", "category", "count"]]
    for index, start in enumerate(result["buckets"]):
        shown = localtime.local(start, zone)
        rows.extend(
            [
                start,
                localtime.format_time(shown, zone, zone_name=False),
                localtime.abbreviation(shown),
                code,
                n,
            ]
            for code, values in result["series"].items()
            if (n := values[index])
        )
    return csv_response(rows, f"contacts-{result['window']}.csv", numeric=("count",))


@bp.route("/complaints.csv")
@roles_required(Role.MANAGER, Role.ADMIN, Role.STAKEHOLDER)
def complaints_csv() -> Response:
    """The complaints that happened in the window (default 24h, as the counts cover it) as CSV."""
    start, end = trends.counted_window(request.args.get("window", "24h"), request.args.get("at") or None)
    records = store().complaints.occurred_between(
        clock.iso(start),
        clock.iso(end),
        # A contact may be dated up to FUTURE_SKEW after its receipt; stream ids are Redis's
        # clock, so allow the two servers' clocks to differ by some minutes too.
        received_from_ms=int((start - FUTURE_SKEW - STREAM_CLOCK_MARGIN).timestamp() * 1000),
        limit=MAX_EXPORT,
    )
    zone = current_zone()
    rows: list[list[Any]] = [list(RECORD_HEADER)]
    for record in records:
        shown = localtime.local(record["occurred_at"], zone)
        local = [localtime.format_time(shown, zone, zone_name=False), localtime.abbreviation(shown)]
        rows.append(
            [record["id"], record["occurred_at"], *local, *(record.get(c, "") for c in RECORD_COLUMNS[2:])]
        )
    return csv_response(rows, "complaints.csv", numeric=("lat", "lon"))


def current_zone() -> ZoneInfo:
    """Return the console's zone (``CRISIS_TIMEZONE``)."""
    return current_app.extensions[localtime.EXTENSION]
