"""Churn stories: which accounts leave, how and when, and the ground truth that says so.

:class:`Stories` plans, at construction, each non-healthy account's story from its archetype: a slow
disengagement (users drop off over weeks, sometimes a downgrade, then a cancellation), a sudden silence
(billing cancels weeks later), involuntary churn (a failed renewal and its dunning retries), a support
storm (urgent, escalated tickets with bad CSAT; half the accounts leave), a vacation dip (usage falls for one
to two weeks and comes back) or a sparse rhythm; healthy and vacation accounts may change plan. The events a
story needs are scheduled by day; its usage changes go into the shape modifiers of the
:class:`~streams.dev.simulator.base.CustomerBase`. :meth:`Stories.truth` is one row per account.
"""

from __future__ import annotations

import calendar
from datetime import timedelta
from typing import Any

import numpy as np

from streams.dev.simulator.base import CustomerBase
from streams.dev.simulator.config import (
    ARCHETYPES,
    CHURN_REASONS,
    HEALTHY,
    INVOLUNTARY,
    NEVER,
    PLANS,
    SILENT,
    SLOW,
    SPARSE,
    STORM,
    VACATION,
    mrr_of,
)
from streams.dev.simulator.days import DAY, HOUR

__all__ = ["Stories"]

Scheduled = dict[int, list[tuple[int, dict[str, Any]]]]  # day -> [(second of day, event)]


class Stories:
    """The churn stories of a :class:`CustomerBase`, drawn from ``rng`` after the base's own draws."""

    def __init__(self, base: CustomerBase, rng: np.random.Generator) -> None:
        self.base = base
        n = base.n
        # Churn bookkeeping, all in absolute seconds since day 0. ``cut`` ends all (non-cancel) events,
        # ``pay_cut`` ends regular renewals.
        self.churn = np.full(n, NEVER, dtype=np.int64)
        self.cut = np.full(n, NEVER, dtype=np.int64)
        self.pay_cut = np.full(n, NEVER, dtype=np.int64)
        self.scheduled: Scheduled = {}
        self.notes: list[list[str]] = [[] for _ in range(n)]
        self.final_plan = base.plan0.copy()
        self.final_mrr = base.mrr0.copy()
        self.churn_lo = min(28, max(1, base.days // 4))  # leave the detectors a baseline first
        for a in range(n):
            self._plan(rng, a, int(base.arch[a]))
        for evs in self.scheduled.values():
            evs.sort(key=lambda x: x[0])
        self.cut_day = self.cut // DAY
        self.churn_in_horizon = self.churn < base.days * DAY

    def _plan(self, rng: np.random.Generator, a: int, kind: int) -> None:
        base = self.base
        if kind == SLOW:
            self._plan_slow(rng, a)
        elif kind == SILENT:
            self._plan_silent(rng, a)
        elif kind == INVOLUNTARY:
            self._plan_involuntary(rng, a)
        elif kind == STORM:
            self._plan_storm(rng, a)
        elif kind == VACATION:
            self._plan_vacation(rng, a)
        elif kind == SPARSE:
            if base.sparse_weekly[a]:
                self.notes[a].append(f"active weekly on {calendar.day_name[base.sparse_wd[a]]}s")
            else:
                self.notes[a].append(f"active monthly on the first weekday on/after day {base.sparse_dom[a]}")
        if kind in (HEALTHY, VACATION):
            self._plan_organic_change(rng, a, allow_downgrade=kind == HEALTHY)

    def truth(self) -> list[dict[str, Any]]:
        """One row per account: archetype, starting plan/mrr/seats and whether/when/why it churned.

        ``plan`` and ``mrr`` are the values at the start of the horizon; plan changes are listed in
        ``notes``. Churn planned beyond the horizon is reported as not churned (with a note).
        """
        base = self.base
        rows: list[dict[str, Any]] = []
        for a in range(base.n):
            kind = int(base.arch[a])
            churned = bool(self.churn_in_horizon[a])
            notes = list(self.notes[a])
            if self.churn[a] != NEVER and not churned:
                notes.append("cancellation falls after the horizon")
            rows.append(
                {
                    "account_id": base.account_ids[a],
                    "archetype": ARCHETYPES[kind],
                    "plan": PLANS[base.plan0[a]],
                    "mrr": float(base.mrr0[a]),
                    "seats": int(base.seats[a]),
                    "churned": churned,
                    "churn_ts": base.ts(int(self.churn[a])) if churned else None,
                    "churn_reason": CHURN_REASONS[kind] if churned else None,
                    "notes": "; ".join(notes),
                }
            )
        return rows

    # -- planning helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _pick_day(rng: np.random.Generator, lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1)) if hi > lo else lo

    def _schedule(self, a: int, t: int, body: dict[str, Any], *, terminal: bool = False) -> bool:
        """Queue an init-time event; dropped if past the horizon or after the account's cut-off."""
        if t >= self.base.days * DAY or (not terminal and t >= self.cut[a]):
            return False
        ev = {"type": body.pop("type"), "account_id": self.base.account_ids[a], "ts": self.base.ts(t), **body}
        self.scheduled.setdefault(t // DAY, []).append((t % DAY, ev))
        return True

    def _set_churn(self, a: int, t: int, cut: int | None = None) -> None:
        self.churn[a] = t
        self.cut[a] = t if cut is None else cut
        self.pay_cut[a] = min(self.pay_cut[a], self.cut[a])

    def _change_plan(self, rng: np.random.Generator, a: int, day: int, new_plan: int) -> None:
        t = day * DAY + self.base.local_sec(rng, a, 14.0, 2.0)
        mrr = mrr_of(new_plan, int(self.base.seats[a]))
        old = PLANS[self.final_plan[a]]
        body = {"type": "billing", "kind": "plan_changed", "mrr": mrr, "plan": PLANS[new_plan]}
        if self._schedule(a, t, body):
            direction = "upgraded" if new_plan > self.final_plan[a] else "downgraded"
            self.notes[a].append(f"{direction} {old}->{PLANS[new_plan]} on {self.base.date(t)}")
            self.final_plan[a] = new_plan
            self.final_mrr[a] = mrr

    def _cancel(self, a: int, t: int) -> None:
        self._schedule(
            a,
            t,
            {
                "type": "billing",
                "kind": "subscription_canceled",
                "mrr": float(self.final_mrr[a]),
                "plan": PLANS[self.final_plan[a]],
            },
            terminal=True,
        )

    def _plan_slow(self, rng: np.random.Generator, a: int) -> None:
        # Users drop off one by one over 3-6 weeks while the rest use it less; the account cancels soon after.
        span = int(rng.integers(21, 43))
        lag = int(rng.integers(0, 11))
        t0 = self._pick_day(rng, self.churn_lo, self.base.days - span - lag - 1)
        self.base.r0[a], self.base.r1[a], self.base.rto[a] = t0, t0 + span, 0.7
        users = slice(int(self.base.first_user[a]), int(self.base.first_user[a] + self.base.n_users[a]))
        self.base.u_quit[users] = t0 + rng.uniform(0, span, int(self.base.n_users[a]))
        self.base.u_resid[users] = rng.uniform(0.0, 0.08, int(self.base.n_users[a]))
        self.notes[a].append(f"disengagement from {self.base.date(t0 * DAY)} over {span} days")
        if self.base.plan0[a] > 0 and rng.random() < 0.35:
            self._change_plan(rng, a, t0 + int(span * rng.uniform(0.4, 0.9)), int(self.base.plan0[a]) - 1)
        day = t0 + span + lag
        self._set_churn(a, day * DAY + self.base.local_sec(rng, a))
        self._cancel(a, int(self.churn[a]))

    def _plan_silent(self, rng: np.random.Generator, a: int) -> None:
        # Everything stops at once (lost champion, moved to a competitor); billing cancels weeks later.
        wait = int(rng.integers(14, 43))
        s = self._pick_day(rng, self.churn_lo, self.base.days - wait - 1)
        t_silent = s * DAY + self.base.local_sec(rng, a)
        t_churn = (s + wait) * DAY + self.base.local_sec(rng, a)
        self._set_churn(a, t_churn, cut=t_silent)
        self.notes[a].append(f"silent from {self.base.ts(t_silent)}")
        self._cancel(a, t_churn)

    def _billing_days(self, a: int, lo: int, n_days: int) -> list[int]:
        dom = int(self.base.bill_dom[a])
        return [d for d in range(lo, lo + n_days) if (self.base.day0 + timedelta(days=d)).day == dom]

    def _plan_involuntary(self, rng: np.random.Generator, a: int) -> None:
        # A renewal fails, dunning retries 2-3 more times over ~2 weeks, then the subscription lapses.
        candidates = self._billing_days(a, self.churn_lo, max(self.base.days, 62) + 62)
        fits = [d for d in candidates if d + 16 < self.base.days]
        d0 = int(rng.choice(fits)) if fits else candidates[0]
        k = int(rng.integers(3, 5))
        offsets = [0, *sorted(int(x) for x in rng.choice(np.arange(2, 15), k - 1, replace=False))]
        sec = int(self.base.bill_sec[a])
        fails = [(d0 + o) * DAY + sec for o in offsets]
        t_churn = fails[-1] + int(rng.integers(1 * HOUR, 30 * HOUR))
        self._set_churn(a, t_churn)
        self.pay_cut[a] = fails[0]
        for t in fails:
            self._schedule(
                a,
                t,
                {
                    "type": "billing",
                    "kind": "payment_failed",
                    "mrr": float(self.final_mrr[a]),
                    "plan": PLANS[self.final_plan[a]],
                },
            )
        self.notes[a].append("payment failures on " + ", ".join(self.base.date(t) for t in fails))
        self._cancel(a, t_churn)

    def _plan_storm(self, rng: np.random.Generator, a: int) -> None:
        # A burst of urgent, escalated tickets with bad CSAT; about half the accounts walk away afterwards.
        length = int(rng.integers(5, 15))
        churns = bool(rng.random() < 0.5)
        s0 = self._pick_day(rng, self.churn_lo, self.base.days - length - 31)
        if churns:
            churn_day = s0 + length + int(rng.integers(7, 31))
            self._set_churn(a, churn_day * DAY + self.base.local_sec(rng, a))
            self.base.r0[a], self.base.r1[a], self.base.rto[a] = s0, churn_day, 0.35
        else:
            self.base.w0[a], self.base.w1[a], self.base.wf[a] = s0, s0 + length, 0.85
        n_tickets = int(rng.integers(4, 8)) + int(min(4, self.base.n_users[a] // 40))
        for _ in range(n_tickets):
            t = self._pick_day(rng, s0, s0 + length - 1) * DAY + self.base.local_sec(rng, a)
            pri = "urgent" if rng.random() < 0.5 else ("high" if rng.random() < 0.85 else "normal")
            self._schedule(a, t, {"type": "support", "kind": "ticket_opened", "priority": pri})
            if rng.random() < 0.65:
                t += int(rng.integers(1 * HOUR, 10 * HOUR))
                self._schedule(a, t, {"type": "support", "kind": "escalated", "priority": "urgent"})
            if rng.random() < 0.8:
                t += int(rng.lognormal(np.log(30 * HOUR), 0.8)) + 600
                self._schedule(a, t, {"type": "support", "kind": "ticket_solved"})
                if rng.random() < 0.75:
                    score = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15] if churns else [0.2, 0.4, 0.4]))
                    t += int(rng.integers(600, 2 * DAY))
                    self._schedule(a, t, {"type": "support", "kind": "csat", "score": score})
        window = f"{self.base.date(s0 * DAY)}..{self.base.date((s0 + length - 1) * DAY)}"
        outcome = "churns" if churns else "recovers"
        self.notes[a].append(f"support storm {window}, {n_tickets} tickets, {outcome}")
        if churns:
            if self.base.plan0[a] > 0 and rng.random() < 0.25:
                self._change_plan(rng, a, s0 + length + int(rng.integers(0, 7)), int(self.base.plan0[a]) - 1)
            self._cancel(a, int(self.churn[a]))

    def _plan_vacation(self, rng: np.random.Generator, a: int) -> None:
        length = int(rng.integers(7, 15))
        lo = min(14, max(0, (self.base.days - length) // 2))
        v0 = self._pick_day(rng, lo, self.base.days - length - 14)
        factor = float(rng.uniform(0.2, 0.4))
        self.base.w0[a], self.base.w1[a], self.base.wf[a] = v0, v0 + length, factor
        span = f"{self.base.date(v0 * DAY)}..{self.base.date((v0 + length - 1) * DAY)}"
        self.notes[a].append(f"vacation dip {span} usage x{factor:.2f}")

    def _plan_organic_change(self, rng: np.random.Generator, a: int, *, allow_downgrade: bool) -> None:
        r = rng.random()
        day = int(rng.integers(0, self.base.days))
        if r < 0.06 and self.base.plan0[a] < 3:
            self._change_plan(rng, a, day, int(self.base.plan0[a]) + 1)
        elif allow_downgrade and r < 0.08 and self.base.plan0[a] > 0:
            self._change_plan(rng, a, day, int(self.base.plan0[a]) - 1)

    # ------------------------------------------------------------------ public API
