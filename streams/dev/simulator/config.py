"""What a simulated customer base is made of: its parameters (:class:`SimulationConfig`), plans and prices,
event names, archetypes and base rates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

__all__ = ["ARCHETYPES", "PLANS", "PRIORITIES", "USAGE_EVENTS", "SimulationConfig", "mrr_of"]

NEVER = 1 << 62  # sentinel "absolute second" for things that never happen
NEVER_DAY = 1e12  # the same, as a (float) day

PLANS = ("starter", "pro", "business", "enterprise")
LIST_PRICE = (49.0, 199.0, 799.0)
PLAN_MIX = (0.45, 0.33, 0.16, 0.06)
SPARSE_PLAN_MIX = (0.6, 0.3, 0.1, 0.0)  # sparse usage comes from small teams
SEATS = ((1, 5), (5, 25), (20, 100), (80, 600))  # inclusive (low, high) per plan

USAGE_EVENTS = (
    "page_viewed",
    "search_performed",
    "report_exported",
    "comment_added",
    "integration_synced",
    "dashboard_created",
    "file_uploaded",
    "user_invited",
)
USAGE_P = np.array([0.40, 0.15, 0.12, 0.10, 0.09, 0.06, 0.05, 0.03])
USAGE_CUM = np.cumsum(USAGE_P)[:-1]

PRIORITIES = ("low", "normal", "high", "urgent")
BG_PRIORITY_CUM = np.cumsum([0.30, 0.62, 0.07, 0.01])[:-1]
CSAT_GOOD_CUM = np.cumsum([0.03, 0.04, 0.08, 0.30, 0.55])[:-1]  # scores 1..5, mostly 4-5

ARCHETYPES = (
    "healthy",
    "slow_disengage",
    "silent",
    "involuntary",
    "support_storm",
    "vacation_dip",
    "sparse",
)
HEALTHY, SLOW, SILENT, INVOLUNTARY, STORM, VACATION, SPARSE = range(7)
CHURN_REASONS = {
    SLOW: "disengaged",
    SILENT: "silent",
    INVOLUNTARY: "payment_failed",
    STORM: "support_issues",
}

# Account time zones (offset from UTC in hours, share): working-day peaks land at different UTC hours.
TZ_OFFSETS_H = np.array([-8.0, -5.0, 0.0, 1.0, 2.0, 5.5])
TZ_P = np.array([0.12, 0.30, 0.18, 0.25, 0.10, 0.05])

USAGE_RATE = 1.6  # weekday usage events per account ~= USAGE_RATE * active_users ** 0.8
SUPPORT_RATE = 0.012  # weekday tickets per account ~= SUPPORT_RATE * active_users ** 0.6
HOLIDAY_FACTOR = 0.15
WEEKEND_SUPPORT = 0.3
TRANSIENT_FAILURE = 0.02  # share of renewals that fail once and succeed on retry (detector bait)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationConfig:
    """Parameters of a simulated customer base.

    Parameters
    ----------
    seed : int
        Seed of every random draw; the same config always yields the same events and truth.
    accounts : int
        Number of accounts (ids ``acct-000000`` ...).
    start : datetime
        Timezone-aware start of the horizon; truncated to its UTC midnight.
    days : int
        Length of the horizon in days.
    slow_disengage, silent, involuntary, support_storm, vacation_dip, sparse : float
        Shares of the archetypes (the remainder is healthy); counts are ``round(share * accounts)``.
    event_scale : float
        Multiplies usage volume only (support and billing keep their realistic rates).
    vacation_plan : str or None
        The plan every ``vacation_dip`` account is on (one kind of customer that dips, as schools do in
        summer); ``None``: drawn like everyone's.

    Examples
    --------
    >>> SimulationConfig(accounts=10).days
    120
    >>> SimulationConfig(silent=0.7, sparse=0.5)
    Traceback (most recent call last):
    ...
    ValueError: archetype shares sum to 1.43 (> 1)
    """

    seed: int = 7
    accounts: int = 200
    start: datetime = field(default=datetime(2026, 6, 1, tzinfo=UTC))
    days: int = 120
    slow_disengage: float = 0.08
    silent: float = 0.03
    involuntary: float = 0.03
    support_storm: float = 0.04
    vacation_dip: float = 0.08
    sparse: float = 0.05
    event_scale: float = 1.0
    vacation_plan: str | None = None

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.accounts < 1 or self.days < 1:
            raise ValueError("accounts and days must be >= 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.event_scale < 0:
            raise ValueError("event_scale must be >= 0")
        shares = self.shares()
        if any(s < 0 or s > 1 for s in shares):
            raise ValueError("archetype shares must lie in [0, 1]")
        if sum(shares) > 1 + 1e-9:
            raise ValueError(f"archetype shares sum to {sum(shares):.2f} (> 1)")
        if self.vacation_plan is not None and self.vacation_plan not in PLANS:
            raise ValueError(f"vacation_plan must be one of {', '.join(PLANS)}")

    def shares(self) -> tuple[float, ...]:
        """Shares of the non-healthy archetypes, in ``ARCHETYPES[1:]`` order."""
        return (
            self.slow_disengage,
            self.silent,
            self.involuntary,
            self.support_storm,
            self.vacation_dip,
            self.sparse,
        )


def mrr_of(plan: int, seats: int) -> float:
    """Monthly revenue of a plan: its list price, or per seat for enterprise."""
    return LIST_PRICE[plan] if plan < 3 else 2500.0 + 100.0 * round(seats * 0.12)
