"""The JSON API, ``/api/v1`` (contract in API.md; OpenAPI at ``/api/v1/openapi.json``)."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from crisis_console.api import alerts, channels, complaints, events, flags, ivr, openapi, scripts, views  # noqa: E402,F401  (routes register on bp)
