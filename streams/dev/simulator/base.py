"""The simulated accounts and their usual behaviour, drawn once from a :class:`SimulationConfig`.

:class:`CustomerBase` holds, per account, the archetype, plan, seats and MRR, its users and their activity
rates (a few power users, many occasional ones), its time zone, weekend and trend factors, its support rate,
its monthly billing anchor, and the usage shape modifiers that churn stories set (a ramp and a window). The
draws are made in a fixed order from one seeded generator: changing that order changes every seed's output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from streams.dev.simulator.config import (
    NEVER_DAY,
    PLAN_MIX,
    PLANS,
    SEATS,
    SPARSE,
    SPARSE_PLAN_MIX,
    SUPPORT_RATE,
    TZ_OFFSETS_H,
    TZ_P,
    USAGE_RATE,
    VACATION,
    SimulationConfig,
    mrr_of,
)
from streams.dev.simulator.days import DAY, HOUR, rfc3339, sec_suffixes

__all__ = ["CustomerBase"]


class CustomerBase:
    """Every account's standing traits (arrays indexed by account, or by user for the ``u_`` ones)."""

    def __init__(self, config: SimulationConfig, rng: np.random.Generator) -> None:
        self.config = config
        n = config.accounts
        self.n = n
        self.days = config.days
        start = config.start.astimezone(UTC)
        self.day0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self.dates = [(self.day0 + timedelta(days=d)).date() for d in range(config.days)]
        self.prefixes = [d.strftime("%Y-%m-%dT") for d in self.dates]
        self.account_ids = [f"acct-{i:06d}" for i in range(n)]
        self._draw_archetypes(rng)
        self._draw_plans(rng)
        self._draw_users(rng)
        self._draw_rhythm(rng)
        self._draw_billing(rng)
        self._draw_shapes(rng)

    def _draw_archetypes(self, rng: np.random.Generator) -> None:
        # Exact counts (so small populations still get every archetype), randomly placed.
        n = self.n
        counts = [round(s * n) for s in self.config.shares()]
        while sum(counts) > n:  # rounding can overshoot by a few
            counts[int(np.argmax(counts))] -= 1
        labels = np.zeros(n, dtype=np.int64)
        labels[: sum(counts)] = np.repeat(np.arange(1, 7), counts)
        self.arch = rng.permutation(labels)

    def _draw_plans(self, rng: np.random.Generator) -> None:
        n, arch = self.n, self.arch
        plan = np.where(
            arch == SPARSE,
            rng.choice(4, size=n, p=SPARSE_PLAN_MIX),
            rng.choice(4, size=n, p=PLAN_MIX),
        )
        if self.config.vacation_plan is not None:
            plan = np.where(arch == VACATION, PLANS.index(self.config.vacation_plan), plan)
        lo = np.array([SEATS[p][0] for p in plan], dtype=float)
        hi = np.array([SEATS[p][1] for p in plan], dtype=float)
        seats = np.rint(np.exp(rng.uniform(np.log(lo), np.log(hi + 0.49)))).astype(np.int64)
        self.plan0 = plan.astype(np.int64)
        self.seats = seats
        self.mrr0 = np.array([mrr_of(int(p), int(s)) for p, s in zip(plan, seats, strict=True)])

    def _draw_users(self, rng: np.random.Generator) -> None:
        # Not every seat is used; per-user activity is lognormal, i.e. a few power users.
        n = self.n
        n_users = np.maximum(1, np.rint(self.seats * rng.uniform(0.5, 0.95, n))).astype(np.int64)
        self.n_users = n_users
        acct_rate = USAGE_RATE * self.config.event_scale * n_users**0.8 * rng.lognormal(0.0, 0.3, n)
        u_acct = np.repeat(np.arange(n), n_users)
        w = rng.lognormal(0.0, 1.1, u_acct.size)
        self.u_acct = u_acct
        self.u_rate = acct_rate[u_acct] * w / np.bincount(u_acct, weights=w)[u_acct]
        first_user = np.concatenate(([0], np.cumsum(n_users)[:-1]))
        self.first_user = first_user
        self.u_acct_id = [self.account_ids[a] for a in u_acct.tolist()]
        self.u_id = [
            f"{self.account_ids[a]}-u{k - first_user[a] + 1:03d}" for k, a in enumerate(u_acct.tolist())
        ]
        self.u_quit = np.full(u_acct.size, NEVER_DAY)  # day a user stops (slow disengagers)
        self.u_resid = np.ones(u_acct.size)

    def _draw_rhythm(self, rng: np.random.Generator) -> None:
        n = self.n
        self.tz_off = np.rint(rng.choice(TZ_OFFSETS_H, size=n, p=TZ_P) * HOUR).astype(np.int64)
        self.weekend = rng.uniform(0.2, 0.3, n)
        self.trend = rng.normal(0.0, 0.25, n) / 365.0  # slow organic growth or shrinkage per day
        self.support_rate = SUPPORT_RATE * self.n_users**0.6 * np.where(self.arch == SPARSE, 0.5, 1.0)

    def _draw_billing(self, rng: np.random.Generator) -> None:
        """The nightly billing run, the subscription's start (before day 0) and its monthly anchor day."""
        n = self.n
        self.bill_sec = rng.integers(1 * HOUR, 6 * HOUR, n)
        tenure = np.where(rng.random(n) < 0.08, rng.uniform(1, 30, n), rng.uniform(30, 900, n))
        created = -np.rint(tenure * DAY).astype(np.int64)  # absolute seconds relative to day 0
        created_dt = [self.day0 + timedelta(seconds=int(c)) for c in created]
        self.bill_dom = np.array([min(c.day, 28) for c in created_dt], dtype=np.int64)
        self.dom_accounts = {dom: np.flatnonzero(self.bill_dom == dom) for dom in range(1, 29)}
        self.preamble: list[tuple[int, dict[str, Any]]] = [
            (
                int(c),
                {
                    "type": "billing",
                    "account_id": self.account_ids[a],
                    "ts": rfc3339(dt),
                    "kind": "subscription_created",
                    "mrr": float(self.mrr0[a]),
                    "plan": PLANS[self.plan0[a]],
                },
            )
            for a, (c, dt) in enumerate(zip(created, created_dt, strict=True))
        ]
        self.preamble.sort(key=lambda x: x[0])

    def _draw_shapes(self, rng: np.random.Generator) -> None:
        # Usage shape modifiers: a ramp (linear from 1 to ramp_to between r0 and r1, held after) and a
        # window (factor applied on days [w0, w1)). Days are floats so "never" needs no masking.
        n = self.n
        self.r0 = np.full(n, NEVER_DAY)
        self.r1 = np.full(n, NEVER_DAY + 1.0)
        self.rto = np.ones(n)
        self.w0 = np.full(n, NEVER_DAY)
        self.w1 = np.full(n, NEVER_DAY)
        self.wf = np.ones(n)
        sparse_kind = rng.random(n) < 0.6  # True: weekly, False: monthly
        self.sparse_weekly = (self.arch == SPARSE) & sparse_kind
        self.sparse_monthly = (self.arch == SPARSE) & ~sparse_kind
        self.sparse_wd = rng.integers(0, 5, n)
        self.sparse_dom = rng.integers(1, 29, n)

    # -- time ------------------------------------------------------------------------------------------------

    def ts(self, t: int) -> str:
        """RFC 3339 text of ``t`` seconds since day 0."""
        d, s = divmod(t, DAY)
        if 0 <= d < self.days:
            return self.prefixes[d] + sec_suffixes()[s]
        return rfc3339(self.day0 + timedelta(seconds=t))

    def date(self, t: int) -> str:
        """ISO date of ``t`` seconds since day 0."""
        return (self.day0 + timedelta(seconds=t)).date().isoformat()

    def local_sec(self, rng: np.random.Generator, a: int, mean_h: float = 13.0, sd_h: float = 2.5) -> int:
        """A business-hours second of the day for account ``a``, in UTC."""
        local = float(np.clip(rng.normal(mean_h, sd_h), 7.0, 20.0)) * HOUR
        return int(local - self.tz_off[a]) % DAY
