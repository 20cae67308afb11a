"""A push's propagation: how soon it reached, and was acknowledged by, the agents connected
when it went out.

"Received by 90 % in 140 ms" is read from each page's first receipt (server time, see
:mod:`crisis_console.services.receipts`) against the push's own time, over the agents whose
sockets the web processes sent it to (``connected``). An agent that connects later and gets
the push by replay counts among the receipts too, so 100 % may be reached by more than the
connected ones; it is never reached while fewer than ``connected`` pages said so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: The shares of the connected agents whose times are reported.
SHARES = (50, 90, 100)
#: A push that has not reached every connected agent this long after it went out is late.
LATE_MS = 2000


def by_share(started_ms: int, times: Sequence[int], connected: int) -> dict[str, int | None]:
    """Return, per share of ``connected``, the ms after ``started_ms`` by which that many of
    ``times`` (sorted) had come; None for a share not reached yet (or nobody connected)."""
    shares: dict[str, int | None] = {}
    for share in SHARES:
        needed = math.ceil(connected * share / 100)
        reached = connected > 0 and len(times) >= needed
        shares[str(share)] = max(0, times[needed - 1] - started_ms) if reached else None
    return shares


def propagation(
    created_ms: int | None, connected: int, received: Sequence[int], acknowledged: Sequence[int], now_ms: int
) -> dict[str, Any] | None:
    """Return a push's propagation figures, or None for a push made before they were kept.

    ``late`` is true once :data:`LATE_MS` have passed without every connected agent's page
    having received it.
    """
    if created_ms is None:
        return None
    received_by = by_share(created_ms, received, connected)
    everyone = received_by["100"]
    late = connected > 0 and (everyone > LATE_MS if everyone is not None else now_ms - created_ms > LATE_MS)
    return {
        "connected": connected,
        "received_ms": received_by,
        "acknowledged_ms": by_share(created_ms, acknowledged, connected),
        "late": late,
    }
