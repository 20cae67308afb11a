"""Twilio webhooks: the phone line's voice calls (every request signature-checked)."""

from flask import Blueprint

bp = Blueprint("twilio", __name__, url_prefix="/twilio")

from crisis_console.webhooks import sms, voice  # noqa: E402,F401  (routes register on bp)
