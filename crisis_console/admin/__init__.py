"""Administration: users, roles, teams and API tokens."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from crisis_console.admin import views  # noqa: E402,F401  (routes register on bp)
