"""Audit entries: who did what to what, and when.

Every state change is written to the audit stream in the same Redis transaction as the
change itself, before anything is announced; services build the entry, the store writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crisis_console import clock

#: Actor name used for changes made by the system itself (first-run set-up, expiries).
SYSTEM = "system"


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit trail."""

    actor: str
    action: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=clock.iso)


def entry(actor: str | None, action: str, subject: str, **details: Any) -> AuditEntry:
    """Build an entry; ``actor`` None means the system."""
    return AuditEntry(actor=actor or SYSTEM, action=action, subject=subject, details=details)
