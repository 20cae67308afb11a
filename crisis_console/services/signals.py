"""Domain signals: each state change is announced once, after its audit entry is written.

The service that makes a change sends the signal with the store as sender; whatever must
follow the change (socket pushes, alerts, the phone line's fail-safe state, the CAP
publisher, the public page) subscribes in :mod:`crisis_console.subscribers` for that store.
Views, the scheduler and the CLI therefore never wire consumers by hand, and whichever
process makes the change publishes it at once: nothing waits for a poll.

Every signal carries ``what`` (the change, in the past tense) and the changed record:

- ``event_changed``: ``event`` (:class:`~crisis_console.services.events.Event`);
  what = created · updated · declared · stood_down
- ``script_changed``: ``script`` (:class:`~crisis_console.services.scripts.Script`);
  what = created · edited · submitted · returned · approved · retired · expired
- ``announcement_changed``: ``announcement`` (its ``public()`` dict);
  what = created · submitted · returned · approved · activated · started · ended
- ``line_changed``: ``line`` (its ``public()`` dict); what = created · updated · deleted
- ``pushed``: ``push`` (the push record as :meth:`Pushes.push` returns it); what = pushed

Plain blinker (Flask's own signal library), no Flask import: services stay plain Python.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import Namespace, Signal

log = logging.getLogger(__name__)

_namespace = Namespace()
event_changed: Signal = _namespace.signal("event-changed")
script_changed: Signal = _namespace.signal("script-changed")
announcement_changed: Signal = _namespace.signal("announcement-changed")
line_changed: Signal = _namespace.signal("line-changed")
pushed: Signal = _namespace.signal("pushed")

ALL: tuple[Signal, ...] = (event_changed, script_changed, announcement_changed, line_changed, pushed)


def send(signal: Signal, store: Any, what: str, **record: Any) -> None:
    """Announce a change that is already stored and audited.

    A subscriber that fails is logged and the others still run: the change has happened,
    and one consumer's trouble (a full disk for the phone-line file, say) must not hide it
    from the rest, nor turn the manager's successful request into an error.
    """
    for receiver in signal.receivers_for(store):
        try:
            receiver(store, what=what, **record)
        except Exception:
            log.exception("a subscriber of %s failed on %s", signal.name, what)
