"""Day-to-day traffic: usage, background support load and renewals, merged with the stories' events.

:class:`Traffic` walks the horizon a day at a time: the day's renewals (a few fail once and succeed on
retry), the events the churn stories scheduled, background tickets (solved within hours to days, mostly good
CSAT) and every user's usage (Poisson around the account's rate times the day's factor: weekday/weekend,
holidays, trend, story ramps and windows; a diurnal spread in local time), sorted by second and yielded.
Memory stays bounded by one day of traffic whatever the horizon.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.dev.simulator.base import CustomerBase
from streams.dev.simulator.config import (
    BG_PRIORITY_CUM,
    CSAT_GOOD_CUM,
    HOLIDAY_FACTOR,
    PLANS,
    PRIORITIES,
    TRANSIENT_FAILURE,
    USAGE_CUM,
    USAGE_EVENTS,
    WEEKEND_SUPPORT,
)
from streams.dev.simulator.days import DAY, HOUR, active_doms, holidays, sec_suffixes
from streams.dev.simulator.stories import Scheduled, Stories

__all__ = ["Traffic"]


class Traffic:
    """The daily events of a :class:`CustomerBase` living its :class:`Stories`."""

    def __init__(self, base: CustomerBase, stories: Stories) -> None:
        self.base = base
        self.stories = stories

    def events(self, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        """Yield every event in timestamp order (non-decreasing ``ts``), drawing the day-to-day traffic from
        ``rng``.

        Starts with each account's ``subscription_created`` (dated at or before ``start``), then walks the
        horizon a day at a time.
        """
        for _, ev in self.base.preamble:
            yield dict(ev)  # copies: callers may mutate what they get
        pending: Scheduled = {}
        plan = self.base.plan0.copy()
        mrr = self.base.mrr0.copy()
        suffixes = sec_suffixes()
        names = USAGE_EVENTS
        u_acct_id, u_id = self.base.u_acct_id, self.base.u_id
        for d in range(self.base.days):
            today = self.base.dates[d]
            prefix = self.base.prefixes[d]
            others = pending.pop(d, [])
            others.extend(self._payments(rng, d, today, plan, mrr, pending))
            for sec, planned in self.stories.scheduled.get(d, []):
                ev = dict(planned)
                if ev["kind"] == "plan_changed":  # renewals later on bill the new price
                    a = int(ev["account_id"][5:])
                    plan[a], mrr[a] = PLANS.index(ev["plan"]), ev["mrr"]
                others.append((sec, ev))
            mult = self._day_multiplier(d, today)
            others.extend(self._tickets(rng, d, today, mult, pending))
            others.sort(key=lambda x: x[0])

            secs, users, kinds, counts = self._usage(rng, d, mult)
            n_other = len(others)
            oi = 0
            nxt = others[0][0] if n_other else DAY
            for s, u, e, c in zip(secs, users, kinds, counts, strict=True):
                while nxt <= s:
                    yield others[oi][1]
                    oi += 1
                    nxt = others[oi][0] if oi < n_other else DAY
                yield {
                    "type": "usage",
                    "account_id": u_acct_id[u],
                    "ts": prefix + suffixes[s],
                    "event": names[e],
                    "user_id": u_id[u],
                    "count": c,
                }
            for _, ev in others[oi:]:
                yield ev

    def _day_multiplier(self, d: int, today: date) -> npt.NDArray[np.float64]:
        """Per-account usage factor for day ``d`` relative to a normal weekday (0 once cut off)."""
        n = self.base.n
        if today in holidays(today.year):
            m = np.full(n, HOLIDAY_FACTOR)
        elif today.weekday() >= 5:
            m = self.base.weekend.copy()
        else:
            m = np.ones(n)
        m *= np.exp(self.base.trend * d)
        frac = np.clip((d - self.base.r0) / (self.base.r1 - self.base.r0), 0.0, 1.0)
        m *= 1.0 + (self.base.rto - 1.0) * frac
        m *= np.where((d >= self.base.w0) & (d < self.base.w1), self.base.wf, 1.0)
        weekly_on = self.base.sparse_weekly & (self.base.sparse_wd == today.weekday())
        monthly_on = self.base.sparse_monthly & (active_doms(today)[self.base.sparse_dom])
        # Sparse accounts pack their usage into the active day and are absent otherwise.
        m *= np.where(self.base.sparse_weekly, 2.5 * weekly_on, 1.0)
        m *= np.where(self.base.sparse_monthly, 6.0 * monthly_on, 1.0)
        m *= d <= self.stories.cut_day
        return m

    def _usage(
        self, rng: np.random.Generator, d: int, mult: npt.NDArray[np.float64]
    ) -> tuple[list[int], list[int], list[int], list[int]]:
        """One day of usage for all users, sorted by second of day: (secs, user index, event index, count)."""
        noise = rng.gamma(12.0, 1.0 / 12.0, self.base.n)  # day-to-day overdispersion per account
        lam = self.base.u_rate * (mult * noise)[self.base.u_acct]
        lam = np.where(d >= self.base.u_quit, lam * self.base.u_resid, lam)
        users = np.repeat(np.arange(lam.size), rng.poisson(lam))
        k = users.size
        acct = self.base.u_acct[users]
        # Working-day diurnal shape in local time: morning and afternoon peaks plus some off-hours traffic.
        comp = rng.random(k)
        z = rng.standard_normal(k)
        hours = np.where(comp < 0.45, 10.5 + 1.3 * z, 14.5 + 1.6 * z)
        off_hours = comp >= 0.9
        hours[off_hours] = rng.random(int(off_hours.sum())) * 24.0
        secs = ((hours * HOUR).astype(np.int64) - self.base.tz_off[acct]) % DAY
        kinds = np.searchsorted(USAGE_CUM, rng.random(k), side="right")
        counts = rng.geometric(0.85, k)
        keep = d * DAY + secs < self.stories.cut[acct]
        if not keep.all():
            users, secs, kinds, counts = users[keep], secs[keep], kinds[keep], counts[keep]
        # One event per (second, user, kind), its counts summed: without an event_id, identical events are
        # deduplicated by content downstream, as a producer's retries would be.
        n_kinds = len(USAGE_EVENTS)
        keys, inverse = np.unique((secs * lam.size + users) * n_kinds + kinds, return_inverse=True)
        counts = np.bincount(inverse, weights=counts).astype(np.int64)
        secs, rest = np.divmod(keys, lam.size * n_kinds)
        users, kinds = np.divmod(rest, n_kinds)
        return secs.tolist(), users.tolist(), kinds.tolist(), counts.tolist()

    def _put(
        self,
        d: int,
        out: list[tuple[int, dict[str, Any]]],
        pending: Scheduled,
        a: int,
        t: int,
        body: dict[str, Any],
    ) -> bool:
        """Emit a runtime-generated event today or queue it for a later day, unless it would be too late."""
        if t >= self.base.days * DAY or t >= self.stories.cut[a]:
            return False
        ev = {"type": body.pop("type"), "account_id": self.base.account_ids[a], "ts": self.base.ts(t), **body}
        day, sec = divmod(t, DAY)
        (out if day == d else pending.setdefault(day, [])).append((sec, ev))
        return True

    def _payments(
        self,
        rng: np.random.Generator,
        d: int,
        today: date,
        plan: npt.NDArray[np.int64],
        mrr: npt.NDArray[np.float64],
        pending: Scheduled,
    ) -> list[tuple[int, dict[str, Any]]]:
        out: list[tuple[int, dict[str, Any]]] = []
        due = self.base.dom_accounts.get(today.day)
        if due is None or not due.size:
            return out
        fail = rng.random(due.size) < TRANSIENT_FAILURE
        retry = rng.integers(1, 4, due.size)
        for a, f, r in zip(due.tolist(), fail.tolist(), retry.tolist(), strict=True):
            t = d * DAY + int(self.base.bill_sec[a])
            if t >= self.stories.pay_cut[a]:
                continue
            body = {"mrr": float(mrr[a]), "plan": PLANS[int(plan[a])]}
            if f:
                self._put(d, out, pending, a, t, {"type": "billing", "kind": "payment_failed", **body})
                t += r * DAY
                if t >= self.stories.pay_cut[a]:
                    continue
            self._put(d, out, pending, a, t, {"type": "billing", "kind": "payment_succeeded", **body})
        return out

    def _tickets(
        self,
        rng: np.random.Generator,
        d: int,
        today: date,
        mult: npt.NDArray[np.float64],
        pending: Scheduled,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Background support load: mostly low/normal tickets, solved within hours to days, good CSAT."""
        out: list[tuple[int, dict[str, Any]]] = []
        factor = (
            HOLIDAY_FACTOR
            if today in holidays(today.year)
            else (WEEKEND_SUPPORT if today.weekday() >= 5 else 1.0)
        )
        n_tickets = rng.poisson(self.base.support_rate * factor * (mult > 0))
        accts = np.repeat(np.arange(self.base.n), n_tickets)
        k = accts.size
        if not k:
            return out
        local = np.clip(rng.normal(13.0, 2.5, k), 6.0, 21.0) * HOUR
        opened = d * DAY + (local.astype(np.int64) - self.base.tz_off[accts]) % DAY
        pri = np.searchsorted(BG_PRIORITY_CUM, rng.random(k), side="right")
        escalate = (pri >= 2) & (rng.random(k) < 0.25)
        esc_delay = rng.integers(1 * HOUR, 8 * HOUR, k)
        solve_delay = rng.lognormal(np.log(8 * HOUR), 1.0, k).astype(np.int64) + 600
        csat = rng.random(k) < 0.35
        csat_delay = rng.integers(600, 2 * DAY, k)
        score = np.searchsorted(CSAT_GOOD_CUM, rng.random(k), side="right") + 1
        for i, a in enumerate(accts.tolist()):
            t = int(opened[i])
            priority = PRIORITIES[pri[i]]
            if not self._put(
                d, out, pending, a, t, {"type": "support", "kind": "ticket_opened", "priority": priority}
            ):
                continue
            if escalate[i]:
                self._put(
                    d,
                    out,
                    pending,
                    a,
                    t + int(esc_delay[i]),
                    {"type": "support", "kind": "escalated", "priority": priority},
                )
            # Escalated tickets are solved after the escalation, not before it.
            t += int(solve_delay[i]) + (int(esc_delay[i]) if escalate[i] else 0)
            if self._put(d, out, pending, a, t, {"type": "support", "kind": "ticket_solved"}) and csat[i]:
                self._put(
                    d,
                    out,
                    pending,
                    a,
                    t + int(csat_delay[i]),
                    {"type": "support", "kind": "csat", "score": int(score[i])},
                )
        return out
