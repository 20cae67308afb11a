"""The role pages: manager console, agent page, stakeholder dashboard."""

from flask import Blueprint

bp = Blueprint("console", __name__)

from crisis_console.console import views  # noqa: E402,F401  (routes register on bp)
