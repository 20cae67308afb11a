"""The public information page: active events and their approved public messages, no sign-in.

``pages`` renders and stores the page once per change and keeps each process's copy;
``strings`` holds the page's own words per language; ``views`` is the blueprint.
"""

from flask import Blueprint

bp = Blueprint("public", __name__)

from crisis_console.public import views  # noqa: E402,F401  (routes register on bp)
