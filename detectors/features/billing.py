"""Billing evidence: failed payments, failures still unresolved, and downgrades.

``payment_failed``
    Failed payments in the last 30 days, today included (capped at 4).
``payment_unresolved``
    Weeks since the first failed payment that no successful one followed (capped at 2).
``mrr_drop``
    ``1 - MRR / reference MRR``, the reference being the recent peak decaying towards the current MRR.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.account_state import AccountDetectorState
from detectors.features.sums import WindowSums
from detectors.outage import iso_day
from detectors.reasons import Evidence
from detectors.windows import AccountWindow

__all__ = ["MrrDrop", "PaymentFailed", "PaymentUnresolved", "billing_evidence"]


@dataclass(frozen=True, slots=True)
class PaymentFailed:
    """``failed`` failed payments in 30 days, the last on ``last_failure``; the last success, if any."""

    value: float
    failed: int
    last_failure: int
    last_success: int | None
    feature: str = "payment_failed"

    def describe(self, value: float) -> str:
        """The reason sentence.

        >>> PaymentFailed(2.0, 2, 20_000, None).describe(2.0)
        'payment failed twice in 30 days (not recovered)'
        """
        times = {1: "once", 2: "twice"}.get(self.failed, f"{self.failed} times")
        success = self.last_success
        recovered = "recovered" if success is not None and success >= self.last_failure else "not recovered"
        return f"payment failed {times} in 30 days ({recovered})"


@dataclass(frozen=True, slots=True)
class PaymentUnresolved:
    """A failed payment on ``since_day`` that no successful one followed."""

    value: float
    since_day: int
    feature: str = "payment_unresolved"

    def describe(self, value: float) -> str:
        return f"failed payment unresolved since {iso_day(self.since_day)}"


@dataclass(frozen=True, slots=True)
class MrrDrop:
    """MRR down from the reference ``ref`` to ``mrr``."""

    value: float
    ref: float
    mrr: float
    feature: str = "mrr_drop"

    def describe(self, value: float) -> str:
        return f"MRR {self.ref:,.0f} -> {self.mrr:,.0f} (-{value:.0%}, downgrade)"


def billing_evidence(
    window: AccountWindow, state: AccountDetectorState, sums: WindowSums, today: int
) -> list[Evidence]:
    """The billing features (see the module docstring), in :data:`~detectors.risk.FEATURES` order."""
    out: list[Evidence] = []
    failed, success_day, failure_days = sums.failed, sums.success_day, sums.failure_days
    if failed:
        last_success = success_day if success_day >= 0 else None
        out.append(PaymentFailed(float(min(4, failed)), failed, max(failure_days), last_success))
        open_failures = [d for d in failure_days if d > success_day]
        if open_failures:
            first_open = min(open_failures)
            out.append(PaymentUnresolved(round(min(2.0, (today - first_open) / 7.0), 4), first_open))
    mrr = window.mrr
    if mrr is not None and state.ref_mrr and mrr < state.ref_mrr:
        out.append(MrrDrop(round(1.0 - mrr / state.ref_mrr, 4), state.ref_mrr, mrr))
    return out
