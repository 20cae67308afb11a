"""Open311 GeoReport v2 (``/open311/v2``): the city's apps report through the same intake."""

from flask import Blueprint

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

from crisis_console.open311 import views  # noqa: E402,F401  (routes register on bp)
