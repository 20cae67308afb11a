"""Sign-in, sign-out and the role checks every page, API route and socket uses."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from crisis_console.auth import views  # noqa: E402,F401  (routes register on bp)
