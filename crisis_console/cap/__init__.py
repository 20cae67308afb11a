"""CAP 1.2 out (an Atom feed of CAP documents) and in (an inbox that opens draft events).

``documents``, ``feed``, ``hazards`` and ``inbox`` are pure; ``views`` is the blueprint.
"""

from flask import Blueprint

bp = Blueprint("cap", __name__, url_prefix="/cap/v1")

from crisis_console.cap import views  # noqa: E402,F401  (routes register on bp)
