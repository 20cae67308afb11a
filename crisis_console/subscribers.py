"""What follows each change: the subscribers of the domain signals, for one store.

Services announce every change once (:mod:`crisis_console.services.signals`); this module
is the one place that says who hears it — managers', agents' and dashboards' sockets, the
alert rules, the phone line's fail-safe file, and the publishers of the public channels
(the CAP feed, the public information page). The web process and the worker each build
one :class:`Subscribers` for their store, so whichever process makes a change publishes it
at once.

Receivers are bound methods held weakly by the signals: they live as long as the owner
(``app.extensions`` or the worker) keeps the :class:`Subscribers`, so the many apps a test
run builds do not pile up receivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crisis_console.services import signals
from crisis_console.services.announcements import Announcements
from crisis_console.services.events import Event
from crisis_console.services.scripts import Script
from crisis_console.store import Store

log = logging.getLogger(__name__)

EXTENSION = "crisis_subscribers"
#: Announcement changes after which the phone line answers differently.
ON_AIR_CHANGES = frozenset({"activated", "started", "ended", "restored"})
#: Event changes the alert rules know (``event.declared``, ``event.stood_down``).
EVENT_ALERTS = {"declared": "declared", "stood_down": "stood down"}

#: A publisher re-publishes a public channel from the store's current state; it is given the
#: change too (``what`` and the record) and may skip one its channel cannot show.
Publisher = Callable[..., Any]


@dataclass
class Subscribers:
    """The consumers of one store's changes.

    Args:
        consoles: the socket pushes (``crisis_console.sockets.realtime``), or None where no
            socket server or queue is configured.
        hooks: returns the alert rules (``AlertHooks``) or None; asked at each change, so
            the app's current hooks are used.
        remember: writes the phone lines' last known state (``LastKnownState.save``), or None.
        publishers: the public channels, re-published after every event, script and
            announcement change (CAP, the public page).
    """

    consoles: Any = None
    hooks: Callable[[], Any] = lambda: None
    remember: Callable[[Store], None] | None = None
    publishers: Sequence[Publisher] = field(default_factory=tuple)

    def connect(self, store: Store) -> Subscribers:
        """Subscribe to ``store``'s signals; return self (keep it: receivers are weak)."""
        signals.event_changed.connect(self.event_changed, sender=store)
        signals.script_changed.connect(self.script_changed, sender=store)
        signals.announcement_changed.connect(self.announcement_changed, sender=store)
        signals.line_changed.connect(self.line_changed, sender=store)
        signals.pushed.connect(self.pushed, sender=store)
        return self

    # --- receivers -------------------------------------------------------------------------

    def event_changed(self, store: Store, *, what: str, event: Event) -> None:
        """An event was created, updated, declared or stood down."""
        if self.consoles is not None:
            self.consoles.event_changed(event.public())
        hooks = self.hooks()
        if hooks is not None and what in EVENT_ALERTS:
            hooks.event_changed(event)
        self.publish(store, what=what, event=event)

    def script_changed(self, store: Store, *, what: str, script: Script) -> None:
        """A script was written, reviewed, approved, retired or expired."""
        if self.consoles is not None:
            if what in ("retired", "expired"):
                self.consoles.script_retired(script.id)
            self.consoles.script_changed(script.public())
        if what != "created":  # a new draft is in no public channel yet
            self.publish(store, what=what, script=script)
        if what == "approved":
            # The phone line must not keep saying the old words: its replacement waits for review.
            Announcements(store).redraft_lagging(script.id)

    def announcement_changed(self, store: Store, *, what: str, announcement: dict[str, Any]) -> None:
        """An announcement was written, reviewed, went on air or ended."""
        if self.remember is not None and what in ON_AIR_CHANGES:
            self.remember(store)
        if self.consoles is not None:
            self.consoles.announcement_changed(announcement)
        hooks = self.hooks()
        if hooks is not None and what in ON_AIR_CHANGES:
            hooks.announcement_changed(announcement)
        if what in ON_AIR_CHANGES:
            self.publish(store, what=what, announcement=announcement)

    def line_changed(self, store: Store, *, what: str, line: dict[str, Any]) -> None:
        """A phone line was added, changed or deleted."""
        if self.remember is not None:
            self.remember(store)

    def pushed(self, store: Store, *, what: str, push: dict[str, Any]) -> None:
        """A script was pushed to agents."""
        if self.consoles is None:
            return
        self.consoles.script_pushed(
            {"push_id": push["id"], "seq": push["seq"], "script": push["script"]}, push["audience"]
        )
        self.consoles.push_progress(
            {"push_id": push["id"], "delivered": 0, "acknowledged": 0, "audience_size": push["audience_size"]}
        )

    def publish(self, store: Store, **change: Any) -> None:
        """Re-publish every public channel; one that fails is logged and the others still go."""
        for publisher in self.publishers:
            try:
                publisher(store, **change)
            except Exception:
                log.exception("publishing %s failed", getattr(publisher, "__name__", publisher))
