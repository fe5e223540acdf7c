"""Support evidence: ticket bursts, urgent tickets and escalations, and poor satisfaction ratings.

``ticket_burst``
    ``log1p`` of the tickets of the last 14 days (today included) beyond twice the account's usual rate
    plus one.
``urgent``
    Urgent/high tickets plus escalations in those 14 days (capped at 8).
``low_csat``
    ``3.5 -`` the mean CSAT of the last 30 days, weighted by how many ratings back it (full weight from 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detectors.account_state import AccountDetectorState
from detectors.features.sums import WindowSums
from detectors.reasons import Evidence, plural

__all__ = ["LowCsat", "Tickets", "support_evidence"]


@dataclass(frozen=True, slots=True)
class Tickets:
    """The last 14 days' tickets against the usual rate (``ticket_burst`` and ``urgent`` share it)."""

    feature: str  # ticket_burst or urgent
    value: float
    tickets: int
    expected: float
    urgent: int
    escalated: int

    def describe(self, value: float) -> str:
        return (
            f"{plural(self.tickets, 'ticket')} in 14 days (usually {self.expected:.1f}), "
            f"{self.urgent} urgent/high, {self.escalated} escalated"
        )


@dataclass(frozen=True, slots=True)
class LowCsat:
    """A low mean CSAT over the last 30 days' ``count`` ratings."""

    value: float
    mean: float
    count: int
    feature: str = "low_csat"

    def describe(self, value: float) -> str:
        return f"CSAT {self.mean:.1f}/5 over {self.count} rating{'s' if self.count != 1 else ''} in 30 days"


def support_evidence(state: AccountDetectorState, sums: WindowSums) -> list[Evidence]:
    """The support features (see the module docstring), in :data:`~detectors.risk.FEATURES` order."""
    out: list[Evidence] = []
    tickets, urgent, escalated = sums.tickets, sums.urgent, sums.escalated
    expected_tickets = 14.0 * state.ticket_rate
    excess = tickets - 2.0 * expected_tickets - 1.0
    if excess > 0:
        out.append(
            Tickets(
                "ticket_burst", round(math.log1p(excess), 4), tickets, expected_tickets, urgent, escalated
            )
        )
    if urgent + escalated:
        out.append(
            Tickets("urgent", float(min(8, urgent + escalated)), tickets, expected_tickets, urgent, escalated)
        )
    if sums.csat_count:
        mean_csat = sums.csat_sum / sums.csat_count
        if mean_csat < 3.5:
            value = round((3.5 - mean_csat) * min(sums.csat_count, 3) / 3.0, 4)
            out.append(LowCsat(value, mean_csat, sums.csat_count))
    return out
