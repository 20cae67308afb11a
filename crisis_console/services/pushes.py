"""Pushes: one approved script version sent to all agents or to teams, with receipts.

Every push takes the next number of a deployment-wide sequence. An agent's page keeps the
last sequence it saw; on reconnect it is sent every later push addressed to it, in order,
so nothing is lost while a laptop sleeps, and the page ignores what it has already shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from crisis_console import clock
from crisis_console.roles import Role
from crisis_console.services import audit, signals
from crisis_console.services.accounts import Accounts, User
from crisis_console.services.errors import NotFound, ValidationError
from crisis_console.services.events import Events
from crisis_console.services.milestones import Milestones
from crisis_console.services.propagation import propagation
from crisis_console.services.receipts import now_ms
from crisis_console.services.scripts import Scripts, rule_error
from crisis_console.store import Store
from crisis_console.store.pushes import PAGE
from scripts_library import model


def parse_audience(value: Any) -> str | list[str]:
    """Return ``"all"`` or a list of team names, or raise naming ``audience``."""
    if value in (None, "", "all"):
        return "all"
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationError('audience must be "all" or a list of team names.', field="audience")
    teams = sorted({t.strip() for t in value if t.strip()})
    if not teams:
        raise ValidationError('audience must be "all" or a list of team names.', field="audience")
    return teams


class Pushes:
    """Send scripts to agents and count who received and acknowledged them."""

    def __init__(self, store: Store):
        self.store = store

    def audience(self, audience: str | list[str]) -> list[int]:
        """Return the ids of the active agents an audience covers."""
        agents = self.store.users.active_agents()
        return sorted(int(uid) for uid, team in agents.items() if audience == "all" or team in audience)

    def push(self, script_id: int | str, audience_value: Any, *, actor: str) -> dict[str, Any]:
        """Push a script's approved version; return the push with its sequence number."""
        scripts = Scripts(self.store)
        script = scripts.require(script_id)
        audience = parse_audience(audience_value)
        state = model.State.APPROVED if script.is_current() else script.state
        if script.live_version is not None and script.expired():
            raise rule_error(model.NotLive("This script has expired; change its expiry to push it again."))
        try:
            model.transition(model.Action.PUSH, state, actor=actor)
        except model.ScriptRuleError as exc:
            raise rule_error(exc) from None
        recipients = self.audience(audience)
        if not recipients:
            raise ValidationError(
                "No active agents are in that audience.", field="audience", code="empty_audience"
            )
        version = self.store.scripts.version(script.id, script.live_version)  # type: ignore[arg-type]
        assert version is not None
        payload = scripts.agent_view(script, version)
        # Agents' cards say EXERCISE for a drill's script; the snapshot keeps it for replays.
        event = Events(self.store).get(script.event_id) if script.event_id else None
        payload["exercise"] = bool(event and event.exercise)
        fields = {
            "script_id": str(script.id),
            "event_id": str(script.event_id or ""),
            "version": str(version["version"]),
            "audience": json.dumps(audience),
            "audience_size": str(len(recipients)),
            "payload": json.dumps(payload),
            "created_by": actor,
            "created_at": clock.iso(),
            "created_ms": str(now_ms()),
        }
        entry = audit.entry(
            actor,
            "script.pushed",
            "push",
            script_id=script.id,
            version=version["version"],
            audience=audience,
            audience_size=len(recipients),
        )
        seq = self.store.pushes.create(fields, recipients, entry)
        Milestones(self.store).reached("first_push", event_ids=self._events_of(script.event_id))
        push = {
            "id": seq,
            "seq": seq,
            "script_id": script.id,
            "version": version["version"],
            "audience": audience,
            "audience_size": len(recipients),
            "script": payload,
        }
        signals.send(signals.pushed, self.store, "pushed", push=push)
        return push

    @staticmethod
    def message(fields: dict[str, str]) -> dict[str, Any]:
        """Return the ``script.pushed`` message of a stored push."""
        return {
            "push_id": int(fields["id"]),
            "seq": int(fields["seq"]),
            "script": json.loads(fields["payload"]),
        }

    def missed(self, user: User, after_seq: int) -> list[dict[str, Any]]:
        """Return the ``script.pushed`` messages a user has not seen, oldest first.

        Pushes of scripts that were retired or expired since are left out: the page would
        only have to remove them again.
        """
        pushes = self.store.pushes.for_user_after(user.id, after_seq)
        current = {s.id for s in Scripts(self.store).list() if s.is_current()}
        return [self.message(p) for p in pushes if int(p["script_id"]) in current]

    def catch_up(self, user: User, after_seq: int) -> dict[str, Any]:
        """Return ``{"pushes": missed after after_seq, "last_seq": newest seq}`` for a client healing a gap.

        ``last_seq`` is read first: every push up to it is stored (seqs are taken in the
        transaction that writes the push), so the client may move its cursor to it even
        when the pushes in between were for other teams — and a push newer than it can
        only be in ``pushes`` or still to come.
        """
        last_seq = self.reachable(after_seq)
        messages = [m for m in self.missed(user, after_seq) if m["seq"] <= last_seq]
        return {"pushes": messages, "last_seq": max(last_seq, after_seq)}

    def reachable(self, after_seq: int) -> int:
        """Return the newest seq one catch-up read after ``after_seq`` covers: the store's
        newest, or where a read of at most ``PAGE`` pushes stops (the reader asks again)."""
        newest = self.store.pushes.last_seq()
        stop = self.store.pushes.nth_after(after_seq, PAGE)
        return newest if stop is None else min(newest, stop)

    def published_after(self, after_seq: int) -> list[tuple[dict[str, Any], str | list[str]]]:
        """Return ``(script.pushed message, audience)`` of every push after ``after_seq``, oldest first.

        A web process whose message-queue listener was cut off re-delivers these to its own
        agents (see :mod:`crisis_console.sockets.healing`). Retired or expired scripts are
        left out, as in :meth:`missed`.
        """
        pushes = self.store.pushes.after(after_seq)
        if not pushes:
            return []
        current = {s.id for s in Scripts(self.store).list() if s.is_current()}
        return [
            (self.message(p), json.loads(p["audience"])) for p in pushes if int(p["script_id"]) in current
        ]

    def feed(self, user: User) -> dict[str, Any]:
        """Return what an agent's page starts with: the latest push of each current script."""
        messages = self.missed(user, 0)
        latest: dict[int, dict[str, Any]] = {}
        for message in messages:
            latest[message["script"]["id"]] = message
        ordered = sorted(latest.values(), key=lambda m: m["seq"], reverse=True)
        acked = self.store.pushes.acknowledged_by(user.id, [str(m["push_id"]) for m in ordered])
        for message in ordered:
            message["acknowledged"] = str(message["push_id"]) in acked
        return {"pushes": ordered, "last_seq": self.store.pushes.last_seq()}

    def receipt(self, push_id: Any, user_id: int | str, *, acknowledged: bool) -> dict[str, Any] | None:
        """Record a delivery or an acknowledgement; return the push's progress.

        Returns None when the push was not addressed to this user (or does not exist).
        """
        if isinstance(push_id, bool) or not str(push_id).isdigit():
            raise ValidationError("push_id must be a push number.", field="push_id")
        receipt = self.store.pushes.record_receipt(push_id, user_id, acknowledged, now_ms())
        if receipt is None:
            return None
        if receipt.completed:
            event_id = int(receipt.event_id) if receipt.event_id.isdigit() else None
            Milestones(self.store).reached("all_acknowledged", event_ids=self._events_of(event_id))
        return {
            "push_id": int(push_id),
            "delivered": receipt.delivered,
            "acknowledged": receipt.acknowledged,
            "audience_size": receipt.audience_size,
        }

    @staticmethod
    def _events_of(event_id: int | None) -> list[int] | None:
        """Return the events a push counts for: its script's event, else every active one."""
        return [event_id] if event_id is not None else None

    def status(self, push_id: int | str) -> dict[str, Any]:
        """Return a push with delivery and acknowledgement counts and who is still pending."""
        fields = self.store.pushes.get(push_id)
        if fields is None:
            raise NotFound(f"No push {push_id}.", field="push_id")
        audience, delivered, acked = self.store.pushes.receipts(push_id)
        received_at, acknowledged_at = self.store.pushes.times(push_id)
        pending_ids = sorted(audience - acked, key=int)
        accounts = Accounts(self.store)
        pending = [u.display_name for u in (accounts.get(i) for i in pending_ids) if u is not None]
        payload = json.loads(fields["payload"])
        return {
            "id": int(fields["id"]),
            "seq": int(fields["seq"]),
            "script_id": int(fields["script_id"]),
            "version": int(fields["version"]),
            "title": payload["title"],
            "language": payload["language"],
            "audience": json.loads(fields["audience"]),
            "audience_size": int(fields["audience_size"]),
            "delivered": len(delivered),
            "acknowledged": len(acked),
            "pending": pending,
            "created_by": fields.get("created_by"),
            "created_at": fields.get("created_at"),
            "propagation": propagation(
                int(fields["created_ms"]) if fields.get("created_ms", "").isdigit() else None,
                int(fields.get("connected") or 0),
                received_at,
                acknowledged_at,
                now_ms(),
            ),
        }

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """Return the newest pushes with their progress."""
        return [self.status(fields["id"]) for fields in self.store.pushes.recent(limit)]

    @staticmethod
    def teams(users: Iterable[User]) -> list[str]:
        """Return the agent teams, for audience pickers."""
        return sorted({u.team for u in users if u.role == Role.AGENT and u.team})
