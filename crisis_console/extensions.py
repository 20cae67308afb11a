"""Flask extensions, created once and wired to each app by the factory."""

from __future__ import annotations

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect

from crisis_console.services.accounts import Accounts
from crisis_console.store import Store

socketio = SocketIO()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

STORE_EXTENSION = "crisis_console.store"
#: The app's :class:`~crisis_console.services.receipts.ReceiptBatcher` (made with its sockets).
RECEIPTS_EXTENSION = "crisis_console.receipts"
#: The app's :class:`~crisis_console.sockets.departures.Departures` (closed connections, forgotten in batches).
DEPARTURES_EXTENSION = "crisis_console.departures"


def store() -> Store:
    """Return the current app's store."""
    return current_app.extensions[STORE_EXTENSION]


def accounts() -> Accounts:
    """Return the account service over the current app's store."""
    return Accounts(store())
