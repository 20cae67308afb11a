"""Crisis Console: one real-time console for a contact centre during a declared emergency.

The factory lives in :mod:`crisis_console.app`; it is re-exported lazily so that
``python -m crisis_console serve`` can apply gevent's monkey-patching before Flask,
redis-py and the standard library's networking are imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from crisis_console.app import create_app

        return create_app
    raise AttributeError(name)
