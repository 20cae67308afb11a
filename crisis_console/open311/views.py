"""GeoReport v2 endpoints, in JSON or XML by extension, with GeoReport's own error format.

Service codes are complaint categories (their Open311 code, else their code); a posted
request goes through the one intake (channel ``open311``) and its id is the complaint's.
Reading is public, as in the cities that publish Open311; posting needs ``api_key``,
a console token made for Open311 (an ordinary API token is refused).

While Redis is down every route answers 503 with ``Retry-After`` and GeoReport's error
list (``[{"code": 503, "description": …}]``, or ``<errors><error>`` in XML): a posted
request is not spooled, because GeoReport clients retry, and they need the real
``service_request_id`` that only the store can give.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, jsonify, request
from redis import RedisError
from werkzeug.exceptions import HTTPException

from crisis_console.extensions import accounts, limiter, store
from crisis_console.open311 import bp
from crisis_console.services.accounts import OPEN311_SCOPE, User, hash_token
from crisis_console.services.categories import Categories, Category
from crisis_console.services.errors import ServiceError
from crisis_console.services.intake import MAX_TEXT, Intake
from crisis_console.sockets import realtime
from crisis_console.store import StoreUnavailable

FORMATS = ("json", "xml")
#: The longest ``address_string`` kept (it is stored in the complaint's text).
MAX_ADDRESS = 500
#: Characters XML 1.0 cannot carry (C0 controls but tab, newline and carriage return; lone
#: surrogates; U+FFFE and U+FFFF): written as U+FFFD so every answer stays well-formed.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: Seconds a client is asked to wait before retrying while the store is unavailable.
RETRY_AFTER = 30


class GeoReportError(Exception):
    """An error answered as ``[{"code": …, "description": …}]``."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def respond(fmt: str, root: str, item: str, rows: list[dict[str, Any]], status: int = 200) -> Response:
    """Answer a list of objects as JSON or as GeoReport XML (``<root><item>…</item></root>``)."""
    if fmt == "json":
        response = jsonify(rows)
        response.status_code = status
        return response
    element = ET.Element(root)
    for row in rows:
        child = ET.SubElement(element, item)
        for name, value in row.items():
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            ET.SubElement(child, name).text = XML_FORBIDDEN.sub("\ufffd", text)
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(element, encoding="utf-8")
    return Response(body, status=status, mimetype="text/xml")


def geo_view(audience: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Check the format, and answer every error in GeoReport's format (never a page)."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapped(*args: Any, fmt: str, **kwargs: Any) -> Response:
            if fmt not in FORMATS:
                return respond(
                    "json", "errors", "error", [{"code": 404, "description": "Use .json or .xml."}], 404
                )
            try:
                return view(*args, fmt=fmt, **kwargs)
            except GeoReportError as exc:
                return respond(
                    fmt, "errors", "error", [{"code": exc.status, "description": exc.description}], exc.status
                )
            except ServiceError as exc:
                status = 400 if exc.status in (409, 422) else exc.status
                return respond(fmt, "errors", "error", [{"code": status, "description": exc.message}], status)
            except HTTPException as exc:
                status = exc.code or 500
                return respond(
                    fmt, "errors", "error", [{"code": status, "description": exc.description}], status
                )

        wrapped.allowed_roles = (audience,)  # type: ignore[attr-defined]  # public or api_key
        return wrapped

    return decorate


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    """Answer errors raised before a view runs (a body over the limit, a rate limit) in GeoReport's
    format too: the rate limiter reads the form, so a 413 can come from there."""
    fmt = (request.view_args or {}).get("fmt")
    status = exc.code or 500
    return respond(
        fmt if fmt in FORMATS else "json",
        "errors",
        "error",
        [{"code": status, "description": exc.description or exc.name}],
        status,
    )


@bp.errorhandler(RedisError)
@bp.errorhandler(StoreUnavailable)
def store_unavailable(exc: Exception) -> Response:
    """Answer 503 with ``Retry-After`` in GeoReport's error format while Redis is down."""
    current_app.logger.error("Redis error on %s %s: %s", request.method, request.path, exc)
    fmt = (request.view_args or {}).get("fmt")
    description = "The service is temporarily unavailable; nothing was stored. Try again shortly."
    response = respond(
        fmt if fmt in FORMATS else "json", "errors", "error", [{"code": 503, "description": description}], 503
    )
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def service(category: Category) -> dict[str, Any]:
    """Return a category as a GeoReport service."""
    return {
        "service_code": category.open311_code or category.code,
        "service_name": category.name,
        "description": category.name,
        "metadata": False,
        "type": "realtime",
        "keywords": ", ".join(category.aliases) or None,
        "group": category.hazards[0] if category.hazards else None,
    }


def service_request(entry: dict[str, Any], categories: dict[str, Category]) -> dict[str, Any]:
    """Return a stored complaint as a GeoReport service request."""
    category = categories.get(entry.get("category", ""))
    return {
        "service_request_id": entry["id"],
        "status": "open",
        "status_notes": None,
        "service_name": category.name if category else entry.get("category"),
        "service_code": (category.open311_code or category.code) if category else entry.get("category", ""),
        "description": entry.get("text") or None,
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": entry.get("occurred_at"),
        "updated_datetime": entry.get("received_at"),
        "expected_datetime": None,
        "address": None,
        "address_id": None,
        "zipcode": entry.get("zip") or None,
        "lat": float(entry["lat"]) if entry.get("lat") else None,
        "long": float(entry["lon"]) if entry.get("lon") else None,
        "media_url": None,
    }


@bp.route("/services.<fmt>")
@geo_view("public")
def services(fmt: str) -> Response:
    """List the service types (complaint categories)."""
    return respond(fmt, "services", "service", [service(c) for c in Categories(store()).list()])


@bp.route("/services/<code>.<fmt>")
@geo_view("public")
def service_definition(code: str, fmt: str) -> Response:
    """Describe one service type (no extra attributes are asked for)."""
    for category in Categories(store()).list():
        if code in (category.open311_code, category.code):
            definition = {"service_code": code, "attributes": []}
            if fmt == "json":
                return jsonify(definition)
            return respond(fmt, "service_definition", "service", [{"service_code": code}])
    raise GeoReportError(404, f"No service {code!r}.")


def _api_key_of_request() -> str:
    """Count service requests per API key (hashed), whatever address relays them."""
    return "open311:" + hash_token(request.form.get("api_key", ""))[:16]


def api_key_user(api_key: str) -> User:
    """Return the user of an Open311 key; raise a GeoReport 403 naming ``api_key`` otherwise.

    Only keys made for Open311 (``crisis-console token create NAME --open311``, or the admin
    Users page) are accepted: an ordinary API token is refused, so the key handed to a city
    app cannot be one that also acts on the console's API, and the reverse.
    """
    service = accounts()
    user = service.user_for_token(api_key, scope=OPEN311_SCOPE)
    if user is not None:
        return user
    if not api_key:
        raise GeoReportError(403, "api_key is missing: send the Open311 key the console's admin gave you.")
    if service.user_for_token(api_key) is not None:
        raise GeoReportError(
            403,
            "api_key is an API token, not an Open311 key: ask the console's admin for an Open311 key "
            "(crisis-console token create NAME --open311).",
        )
    raise GeoReportError(403, "api_key is not valid (unknown, revoked, or its account is disabled).")


def check_form(form: Any) -> None:
    """Refuse, naming the field, what cannot be stored whole: NUL characters and over-long text
    (a description is never cut short: the caller is told instead)."""
    for name, value in form.items(multi=True):
        if "\x00" in value:
            raise GeoReportError(400, f"{name} contains a NUL character.")
    if len(form.get("address_string", "")) > MAX_ADDRESS:
        raise GeoReportError(400, f"address_string must be at most {MAX_ADDRESS} characters.")
    limit = MAX_TEXT - (len(form["address_string"]) + len("\nAddress: ") if form.get("address_string") else 0)
    if len(form.get("description", "")) > limit:
        raise GeoReportError(400, f"description must be at most {limit} characters (with the address).")


@bp.route("/requests.<fmt>", methods=["POST"])
@limiter.limit(lambda: current_app.config["OPEN311_POST_LIMIT"], key_func=_api_key_of_request)
@geo_view("api_key")
def post_request(fmt: str) -> Response:
    """Create a service request: a complaint on the ``open311`` channel."""
    form = request.form
    user = api_key_user(form.get("api_key", ""))
    check_form(form)
    if not form.get("service_code"):
        raise GeoReportError(400, "service_code is required.")
    has_point = form.get("lat") and form.get("long")
    if not has_point and not form.get("address_string") and not form.get("address_id"):
        raise GeoReportError(400, "A location is required: lat and long, address_string or address_id.")
    text = form.get("description", "")
    if form.get("address_string"):
        text = f"{text}\nAddress: {form['address_string']}".strip()
    record = {"category": form["service_code"], "channel": "open311", "text": text}
    if has_point:
        record["lat"], record["lon"] = form["lat"], form["long"]
    result = Intake(store()).submit([record], channel="open311", source=f"open311:{user.username}")
    if result["rejected"]:
        error = result["rejected"][0]["error"]
        raise GeoReportError(400, f"{error['field']}: {error['message']}")
    realtime.trends_changed(1)
    return respond(
        fmt,
        "service_requests",
        "request",
        [{"service_request_id": result["ids"][0], "service_notice": None, "account_id": None}],
        201,
    )


@bp.route("/requests.<fmt>")
@geo_view("public")
def get_requests(fmt: str) -> Response:
    """List recent service requests (newest first, at most 1,000), filterable by id and code."""
    categories = {c.code: c for c in Categories(store()).list(include_inactive=True)}
    wanted_ids = {i for i in request.args.get("service_request_id", "").split(",") if i}
    codes = {c for c in request.args.get("service_code", "").split(",") if c}
    rows = [service_request(e, categories) for e in store().complaints.recent(1000)]
    rows = [
        r
        for r in rows
        if (not wanted_ids or r["service_request_id"] in wanted_ids)
        and (not codes or r["service_code"] in codes)
    ]
    return respond(fmt, "service_requests", "request", rows)


@bp.route("/requests/<request_id>.<fmt>")
@geo_view("public")
def get_request(request_id: str, fmt: str) -> Response:
    """Return one service request."""
    entry = store().complaints.get(request_id)
    if entry is None:
        raise GeoReportError(404, f"No service request {request_id!r}.")
    categories = {c.code: c for c in Categories(store()).list(include_inactive=True)}
    return respond(fmt, "service_requests", "request", [service_request(entry, categories)])
