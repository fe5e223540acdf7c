"""Seeded, deterministic simulator of a SaaS customer base's event streams.

The simulator produces the three canonical event types (``usage``, ``support`` and ``billing``) for a
population of accounts, together with a ground-truth table saying which accounts churn, when and why. It
exists to exercise the detectors end to end and to benchmark the pipeline, so it aims for *plausible*
behaviour rather than fidelity: plans with correlated seat counts, a few power users and many occasional
ones per account, weekday/weekend and holiday seasonality, a diurnal spread of timestamps, skewed event
names, background support load, monthly renewals and a handful of churn archetypes.

Events are generated day by day (all accounts, sorted by timestamp, then yielded), so memory stays bounded
by one day of traffic whatever the horizon.

Examples
--------
>>> cfg = SimulationConfig(seed=3, accounts=20, days=14)
>>> sim = Simulation(cfg)
>>> events = list(sim.events())
>>> events[0]["type"], events[0]["kind"]
('billing', 'subscription_created')
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
>>> events == list(Simulation(cfg).events())
True
>>> truth = sim.truth()
>>> len(truth), truth[0]["account_id"]
(20, 'acct-000000')

Size: ~820 lines, over the ~400 aim: a dev tool whose account behaviours, calendar and event writing
have not been split yet (a move must keep every seed's output, which tests and documented figures rely on).
Other customer-base shapes live in ``streams/dev/shapes.py``.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["Simulation", "SimulationConfig", "write_jsonl"]

DAY = 86_400
HOUR = 3_600
_NEVER = 1 << 62  # sentinel "absolute second" for things that never happen
_NEVER_DAY = 1e12  # the same, as a (float) day

PLANS = ("starter", "pro", "business", "enterprise")
_LIST_PRICE = (49.0, 199.0, 799.0)
_PLAN_MIX = (0.45, 0.33, 0.16, 0.06)
_SPARSE_PLAN_MIX = (0.6, 0.3, 0.1, 0.0)  # sparse usage comes from small teams
_SEATS = ((1, 5), (5, 25), (20, 100), (80, 600))  # inclusive (low, high) per plan

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
_USAGE_P = np.array([0.40, 0.15, 0.12, 0.10, 0.09, 0.06, 0.05, 0.03])
_USAGE_CUM = np.cumsum(_USAGE_P)[:-1]

PRIORITIES = ("low", "normal", "high", "urgent")
_BG_PRIORITY_CUM = np.cumsum([0.30, 0.62, 0.07, 0.01])[:-1]
_CSAT_GOOD_CUM = np.cumsum([0.03, 0.04, 0.08, 0.30, 0.55])[:-1]  # scores 1..5, mostly 4-5

ARCHETYPES = (
    "healthy",
    "slow_disengage",
    "silent",
    "involuntary",
    "support_storm",
    "vacation_dip",
    "sparse",
)
_HEALTHY, _SLOW, _SILENT, _INVOLUNTARY, _STORM, _VACATION, _SPARSE = range(7)
_CHURN_REASONS = {
    _SLOW: "disengaged",
    _SILENT: "silent",
    _INVOLUNTARY: "payment_failed",
    _STORM: "support_issues",
}

# Account time zones (offset from UTC in hours, share): working-day peaks land at different UTC hours.
_TZ_OFFSETS_H = np.array([-8.0, -5.0, 0.0, 1.0, 2.0, 5.5])
_TZ_P = np.array([0.12, 0.30, 0.18, 0.25, 0.10, 0.05])

_USAGE_RATE = 1.6  # weekday usage events per account ~= _USAGE_RATE * active_users ** 0.8
_SUPPORT_RATE = 0.012  # weekday tickets per account ~= _SUPPORT_RATE * active_users ** 0.6
_HOLIDAY_FACTOR = 0.15
_WEEKEND_SUPPORT = 0.3
_TRANSIENT_FAILURE = 0.02  # share of renewals that fail once and succeed on retry (detector bait)


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


@cache
def _sec_suffixes() -> tuple[str, ...]:
    """``"HH:MM:SSZ"`` for every second of a day; string concat beats strftime in the hot loop."""
    return tuple(f"{s // HOUR:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(DAY))


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th (1-based) ``weekday`` of a month; ``n = -1`` for the last one."""
    days = [
        d
        for d in range(1, calendar.monthrange(year, month)[1] + 1)
        if date(year, month, d).weekday() == weekday
    ]
    return date(year, month, days[n - 1 if n > 0 else n])


def _observed(d: date) -> date:
    # Fixed-date holidays falling on a weekend are observed on the nearest weekday.
    if d.weekday() == 5:
        return d - timedelta(days=1)
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


@cache
def _holidays(year: int) -> frozenset[date]:
    """A few (US-centric) public holidays on which everybody's usage is low."""
    return frozenset(
        {
            _observed(date(year, 1, 1)),
            _nth_weekday(year, 5, 0, -1),  # Memorial Day
            _observed(date(year, 6, 19)),  # Juneteenth
            _observed(date(year, 7, 4)),
            _nth_weekday(year, 9, 0, 1),  # Labor Day
            _nth_weekday(year, 11, 3, 4),  # Thanksgiving
            _nth_weekday(year, 11, 3, 4) + timedelta(days=1),
            date(year, 12, 24),
            _observed(date(year, 12, 25)),
            date(year, 12, 31),
        }
    )


def _first_weekday_on_or_after(year: int, month: int, dom: int) -> int:
    """Day of month of the first Monday-Friday on or after ``dom``."""
    d = date(year, month, dom)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d.day if d.month == month else 99


@cache
def _active_doms(today: date) -> npt.NDArray[np.bool_]:
    """Mask over anchor days of month 1..28: which monthly-sparse anchors make ``today`` their active day."""
    out = np.zeros(29, dtype=bool)
    for dom in range(1, 29):
        out[dom] = _first_weekday_on_or_after(today.year, today.month, dom) == today.day
    return out


def _enterprise_mrr(seats: int) -> float:
    return 2500.0 + 100.0 * round(seats * 0.12)


def _mrr(plan: int, seats: int) -> float:
    return _LIST_PRICE[plan] if plan < 3 else _enterprise_mrr(seats)


class Simulation:
    """A simulated customer base; see the module docstring for an example.

    Parameters
    ----------
    config : SimulationConfig
        What to simulate. Accounts, archetypes and all churn-related events are drawn here; day-to-day
        traffic is drawn lazily by :meth:`events`, from its own seeded stream, so every call yields the same
        sequence.
    """

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        cfg = config
        rng = np.random.default_rng([cfg.seed, 0])
        n = cfg.accounts
        self._n = n
        self._days = cfg.days
        start = cfg.start.astimezone(UTC)
        self._day0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self._dates = [(self._day0 + timedelta(days=d)).date() for d in range(cfg.days)]
        self._prefixes = [d.strftime("%Y-%m-%dT") for d in self._dates]
        self.account_ids = [f"acct-{i:06d}" for i in range(n)]

        # Archetypes: exact counts (so small populations still get every archetype), randomly placed.
        counts = [round(s * n) for s in cfg.shares()]
        while sum(counts) > n:  # rounding can overshoot by a few
            counts[int(np.argmax(counts))] -= 1
        labels = np.zeros(n, dtype=np.int64)
        labels[: sum(counts)] = np.repeat(np.arange(1, 7), counts)
        self._arch = rng.permutation(labels)
        arch = self._arch

        # Plans and seats.
        plan = np.where(
            arch == _SPARSE,
            rng.choice(4, size=n, p=_SPARSE_PLAN_MIX),
            rng.choice(4, size=n, p=_PLAN_MIX),
        )
        lo = np.array([_SEATS[p][0] for p in plan], dtype=float)
        hi = np.array([_SEATS[p][1] for p in plan], dtype=float)
        seats = np.rint(np.exp(rng.uniform(np.log(lo), np.log(hi + 0.49)))).astype(np.int64)
        self._plan0 = plan.astype(np.int64)
        self._seats = seats
        self._mrr0 = np.array([_mrr(int(p), int(s)) for p, s in zip(plan, seats, strict=True)])

        # Users: not every seat is used; per-user activity is lognormal, i.e. a few power users.
        n_users = np.maximum(1, np.rint(seats * rng.uniform(0.5, 0.95, n))).astype(np.int64)
        self._n_users = n_users
        acct_rate = _USAGE_RATE * cfg.event_scale * n_users**0.8 * rng.lognormal(0.0, 0.3, n)
        u_acct = np.repeat(np.arange(n), n_users)
        w = rng.lognormal(0.0, 1.1, u_acct.size)
        self._u_acct = u_acct
        self._u_rate = acct_rate[u_acct] * w / np.bincount(u_acct, weights=w)[u_acct]
        first_user = np.concatenate(([0], np.cumsum(n_users)[:-1]))
        self._first_user = first_user
        self._u_acct_id = [self.account_ids[a] for a in u_acct.tolist()]
        self._u_id = [
            f"{self.account_ids[a]}-u{k - first_user[a] + 1:03d}" for k, a in enumerate(u_acct.tolist())
        ]
        self._u_quit = np.full(u_acct.size, _NEVER_DAY)  # day a user stops (slow disengagers)
        self._u_resid = np.ones(u_acct.size)

        # Per-account rhythm.
        self._tz_off = np.rint(rng.choice(_TZ_OFFSETS_H, size=n, p=_TZ_P) * HOUR).astype(np.int64)
        self._weekend = rng.uniform(0.2, 0.3, n)
        self._trend = rng.normal(0.0, 0.25, n) / 365.0  # slow organic growth or shrinkage per day
        self._support_rate = _SUPPORT_RATE * n_users**0.6 * np.where(arch == _SPARSE, 0.5, 1.0)
        self._bill_sec = rng.integers(1 * HOUR, 6 * HOUR, n)  # nightly billing run
        tenure = np.where(rng.random(n) < 0.08, rng.uniform(1, 30, n), rng.uniform(30, 900, n))
        created = -np.rint(tenure * DAY).astype(np.int64)  # absolute seconds relative to day 0
        created_dt = [self._day0 + timedelta(seconds=int(c)) for c in created]
        self._bill_dom = np.array([min(c.day, 28) for c in created_dt], dtype=np.int64)
        self._dom_accounts = {dom: np.flatnonzero(self._bill_dom == dom) for dom in range(1, 29)}
        self._preamble: list[tuple[int, dict[str, Any]]] = [
            (
                int(c),
                {
                    "type": "billing",
                    "account_id": self.account_ids[a],
                    "ts": _rfc3339(dt),
                    "kind": "subscription_created",
                    "mrr": float(self._mrr0[a]),
                    "plan": PLANS[plan[a]],
                },
            )
            for a, (c, dt) in enumerate(zip(created, created_dt, strict=True))
        ]
        self._preamble.sort(key=lambda x: x[0])

        # Usage shape modifiers: a ramp (linear from 1 to ramp_to between r0 and r1, held after) and a
        # window (factor applied on days [w0, w1)). Days are floats so "never" needs no masking.
        self._r0 = np.full(n, _NEVER_DAY)
        self._r1 = np.full(n, _NEVER_DAY + 1.0)
        self._rto = np.ones(n)
        self._w0 = np.full(n, _NEVER_DAY)
        self._w1 = np.full(n, _NEVER_DAY)
        self._wf = np.ones(n)
        sparse_kind = rng.random(n) < 0.6  # True: weekly, False: monthly
        self._sparse_weekly = (arch == _SPARSE) & sparse_kind
        self._sparse_monthly = (arch == _SPARSE) & ~sparse_kind
        self._sparse_wd = rng.integers(0, 5, n)
        self._sparse_dom = rng.integers(1, 29, n)

        # Churn bookkeeping, all in absolute seconds since day 0. ``cut`` ends all (non-cancel) events,
        # ``pay_cut`` ends regular renewals.
        self._churn = np.full(n, _NEVER, dtype=np.int64)
        self._cut = np.full(n, _NEVER, dtype=np.int64)
        self._pay_cut = np.full(n, _NEVER, dtype=np.int64)
        self._scheduled: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        self._notes: list[list[str]] = [[] for _ in range(n)]
        self._final_plan = self._plan0.copy()
        self._final_mrr = self._mrr0.copy()
        self._churn_lo = min(28, max(1, cfg.days // 4))  # leave the detectors a baseline first

        for a in range(n):
            kind = int(arch[a])
            if kind == _SLOW:
                self._plan_slow(rng, a)
            elif kind == _SILENT:
                self._plan_silent(rng, a)
            elif kind == _INVOLUNTARY:
                self._plan_involuntary(rng, a)
            elif kind == _STORM:
                self._plan_storm(rng, a)
            elif kind == _VACATION:
                self._plan_vacation(rng, a)
            elif kind == _SPARSE:
                if self._sparse_weekly[a]:
                    self._notes[a].append(f"active weekly on {calendar.day_name[self._sparse_wd[a]]}s")
                else:
                    self._notes[a].append(
                        f"active monthly on the first weekday on/after day {self._sparse_dom[a]}"
                    )
            if kind in (_HEALTHY, _VACATION):
                self._plan_organic_change(rng, a, allow_downgrade=kind == _HEALTHY)
        for evs in self._scheduled.values():
            evs.sort(key=lambda x: x[0])
        self._cut_day = self._cut // DAY
        self._churn_in_horizon = self._churn < cfg.days * DAY

    # ------------------------------------------------------------------ archetype planning (init time)

    def _ts(self, t: int) -> str:
        d, s = divmod(t, DAY)
        if 0 <= d < self._days:
            return self._prefixes[d] + _sec_suffixes()[s]
        return _rfc3339(self._day0 + timedelta(seconds=t))

    def _date(self, t: int) -> str:
        return (self._day0 + timedelta(seconds=t)).date().isoformat()

    def _pick_day(self, rng: np.random.Generator, lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1)) if hi > lo else lo

    def _local_sec(self, rng: np.random.Generator, a: int, mean_h: float = 13.0, sd_h: float = 2.5) -> int:
        """A business-hours second of the day for account ``a``, in UTC."""
        local = float(np.clip(rng.normal(mean_h, sd_h), 7.0, 20.0)) * HOUR
        return int(local - self._tz_off[a]) % DAY

    def _schedule(self, a: int, t: int, body: dict[str, Any], *, terminal: bool = False) -> bool:
        """Queue an init-time event; dropped if past the horizon or after the account's cut-off."""
        if t >= self._days * DAY or (not terminal and t >= self._cut[a]):
            return False
        ev = {"type": body.pop("type"), "account_id": self.account_ids[a], "ts": self._ts(t), **body}
        self._scheduled.setdefault(t // DAY, []).append((t % DAY, ev))
        return True

    def _set_churn(self, a: int, t: int, cut: int | None = None) -> None:
        self._churn[a] = t
        self._cut[a] = t if cut is None else cut
        self._pay_cut[a] = min(self._pay_cut[a], self._cut[a])

    def _change_plan(self, rng: np.random.Generator, a: int, day: int, new_plan: int) -> None:
        t = day * DAY + self._local_sec(rng, a, 14.0, 2.0)
        mrr = _mrr(new_plan, int(self._seats[a]))
        old = PLANS[self._final_plan[a]]
        body = {"type": "billing", "kind": "plan_changed", "mrr": mrr, "plan": PLANS[new_plan]}
        if self._schedule(a, t, body):
            direction = "upgraded" if new_plan > self._final_plan[a] else "downgraded"
            self._notes[a].append(f"{direction} {old}->{PLANS[new_plan]} on {self._date(t)}")
            self._final_plan[a] = new_plan
            self._final_mrr[a] = mrr

    def _cancel(self, a: int, t: int) -> None:
        self._schedule(
            a,
            t,
            {
                "type": "billing",
                "kind": "subscription_canceled",
                "mrr": float(self._final_mrr[a]),
                "plan": PLANS[self._final_plan[a]],
            },
            terminal=True,
        )

    def _plan_slow(self, rng: np.random.Generator, a: int) -> None:
        # Users drop off one by one over 3-6 weeks while the rest use it less; the account cancels soon after.
        span = int(rng.integers(21, 43))
        lag = int(rng.integers(0, 11))
        t0 = self._pick_day(rng, self._churn_lo, self._days - span - lag - 1)
        self._r0[a], self._r1[a], self._rto[a] = t0, t0 + span, 0.7
        users = slice(int(self._first_user[a]), int(self._first_user[a] + self._n_users[a]))
        self._u_quit[users] = t0 + rng.uniform(0, span, int(self._n_users[a]))
        self._u_resid[users] = rng.uniform(0.0, 0.08, int(self._n_users[a]))
        self._notes[a].append(f"disengagement from {self._date(t0 * DAY)} over {span} days")
        if self._plan0[a] > 0 and rng.random() < 0.35:
            self._change_plan(rng, a, t0 + int(span * rng.uniform(0.4, 0.9)), int(self._plan0[a]) - 1)
        day = t0 + span + lag
        self._set_churn(a, day * DAY + self._local_sec(rng, a))
        self._cancel(a, int(self._churn[a]))

    def _plan_silent(self, rng: np.random.Generator, a: int) -> None:
        # Everything stops at once (lost champion, moved to a competitor); billing cancels weeks later.
        wait = int(rng.integers(14, 43))
        s = self._pick_day(rng, self._churn_lo, self._days - wait - 1)
        t_silent = s * DAY + self._local_sec(rng, a)
        t_churn = (s + wait) * DAY + self._local_sec(rng, a)
        self._set_churn(a, t_churn, cut=t_silent)
        self._notes[a].append(f"silent from {self._ts(t_silent)}")
        self._cancel(a, t_churn)

    def _billing_days(self, a: int, lo: int, n_days: int) -> list[int]:
        dom = int(self._bill_dom[a])
        return [d for d in range(lo, lo + n_days) if (self._day0 + timedelta(days=d)).day == dom]

    def _plan_involuntary(self, rng: np.random.Generator, a: int) -> None:
        # A renewal fails, dunning retries 2-3 more times over ~2 weeks, then the subscription lapses.
        candidates = self._billing_days(a, self._churn_lo, max(self._days, 62) + 62)
        fits = [d for d in candidates if d + 16 < self._days]
        d0 = int(rng.choice(fits)) if fits else candidates[0]
        k = int(rng.integers(3, 5))
        offsets = [0, *sorted(int(x) for x in rng.choice(np.arange(2, 15), k - 1, replace=False))]
        sec = int(self._bill_sec[a])
        fails = [(d0 + o) * DAY + sec for o in offsets]
        t_churn = fails[-1] + int(rng.integers(1 * HOUR, 30 * HOUR))
        self._set_churn(a, t_churn)
        self._pay_cut[a] = fails[0]
        for t in fails:
            self._schedule(
                a,
                t,
                {
                    "type": "billing",
                    "kind": "payment_failed",
                    "mrr": float(self._final_mrr[a]),
                    "plan": PLANS[self._final_plan[a]],
                },
            )
        self._notes[a].append("payment failures on " + ", ".join(self._date(t) for t in fails))
        self._cancel(a, t_churn)

    def _plan_storm(self, rng: np.random.Generator, a: int) -> None:
        # A burst of urgent, escalated tickets with bad CSAT; about half the accounts walk away afterwards.
        length = int(rng.integers(5, 15))
        churns = bool(rng.random() < 0.5)
        s0 = self._pick_day(rng, self._churn_lo, self._days - length - 31)
        if churns:
            churn_day = s0 + length + int(rng.integers(7, 31))
            self._set_churn(a, churn_day * DAY + self._local_sec(rng, a))
            self._r0[a], self._r1[a], self._rto[a] = s0, churn_day, 0.35
        else:
            self._w0[a], self._w1[a], self._wf[a] = s0, s0 + length, 0.85
        n_tickets = int(rng.integers(4, 8)) + int(min(4, self._n_users[a] // 40))
        for _ in range(n_tickets):
            t = self._pick_day(rng, s0, s0 + length - 1) * DAY + self._local_sec(rng, a)
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
        window = f"{self._date(s0 * DAY)}..{self._date((s0 + length - 1) * DAY)}"
        outcome = "churns" if churns else "recovers"
        self._notes[a].append(f"support storm {window}, {n_tickets} tickets, {outcome}")
        if churns:
            if self._plan0[a] > 0 and rng.random() < 0.25:
                self._change_plan(rng, a, s0 + length + int(rng.integers(0, 7)), int(self._plan0[a]) - 1)
            self._cancel(a, int(self._churn[a]))

    def _plan_vacation(self, rng: np.random.Generator, a: int) -> None:
        length = int(rng.integers(7, 15))
        lo = min(14, max(0, (self._days - length) // 2))
        v0 = self._pick_day(rng, lo, self._days - length - 14)
        factor = float(rng.uniform(0.2, 0.4))
        self._w0[a], self._w1[a], self._wf[a] = v0, v0 + length, factor
        self._notes[a].append(
            f"vacation dip {self._date(v0 * DAY)}..{self._date((v0 + length - 1) * DAY)} usage x{factor:.2f}"
        )

    def _plan_organic_change(self, rng: np.random.Generator, a: int, *, allow_downgrade: bool) -> None:
        r = rng.random()
        day = int(rng.integers(0, self._days))
        if r < 0.06 and self._plan0[a] < 3:
            self._change_plan(rng, a, day, int(self._plan0[a]) + 1)
        elif allow_downgrade and r < 0.08 and self._plan0[a] > 0:
            self._change_plan(rng, a, day, int(self._plan0[a]) - 1)

    # ------------------------------------------------------------------ public API

    def truth(self) -> list[dict[str, Any]]:
        """One row per account: archetype, starting plan/mrr/seats and whether/when/why it churned.

        ``plan`` and ``mrr`` are the values at the start of the horizon; plan changes are listed in
        ``notes``. Churn planned beyond the horizon is reported as not churned (with a note).
        """
        rows: list[dict[str, Any]] = []
        for a in range(self._n):
            kind = int(self._arch[a])
            churned = bool(self._churn_in_horizon[a])
            notes = list(self._notes[a])
            if self._churn[a] != _NEVER and not churned:
                notes.append("cancellation falls after the horizon")
            rows.append(
                {
                    "account_id": self.account_ids[a],
                    "archetype": ARCHETYPES[kind],
                    "plan": PLANS[self._plan0[a]],
                    "mrr": float(self._mrr0[a]),
                    "seats": int(self._seats[a]),
                    "churned": churned,
                    "churn_ts": self._ts(int(self._churn[a])) if churned else None,
                    "churn_reason": _CHURN_REASONS[kind] if churned else None,
                    "notes": "; ".join(notes),
                }
            )
        return rows

    def events(self) -> Iterator[dict[str, Any]]:
        """Yield every event in timestamp order (non-decreasing ``ts``); identical for identical configs.

        Starts with each account's ``subscription_created`` (dated at or before ``start``), then walks the
        horizon a day at a time.
        """
        rng = np.random.default_rng([self.config.seed, 1])
        for _, ev in self._preamble:
            yield dict(ev)  # copies: callers may mutate what they get
        pending: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        plan = self._plan0.copy()
        mrr = self._mrr0.copy()
        suffixes = _sec_suffixes()
        names = USAGE_EVENTS
        u_acct_id, u_id = self._u_acct_id, self._u_id
        for d in range(self._days):
            today = self._dates[d]
            prefix = self._prefixes[d]
            others = pending.pop(d, [])
            others.extend(self._payments(rng, d, today, plan, mrr, pending))
            for sec, planned in self._scheduled.get(d, []):
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

    # ------------------------------------------------------------------ per-day generation

    def _day_multiplier(self, d: int, today: date) -> npt.NDArray[np.float64]:
        """Per-account usage factor for day ``d`` relative to a normal weekday (0 once cut off)."""
        n = self._n
        if today in _holidays(today.year):
            m = np.full(n, _HOLIDAY_FACTOR)
        elif today.weekday() >= 5:
            m = self._weekend.copy()
        else:
            m = np.ones(n)
        m *= np.exp(self._trend * d)
        frac = np.clip((d - self._r0) / (self._r1 - self._r0), 0.0, 1.0)
        m *= 1.0 + (self._rto - 1.0) * frac
        m *= np.where((d >= self._w0) & (d < self._w1), self._wf, 1.0)
        weekly_on = self._sparse_weekly & (self._sparse_wd == today.weekday())
        monthly_on = self._sparse_monthly & (_active_doms(today)[self._sparse_dom])
        # Sparse accounts pack their usage into the active day and are absent otherwise.
        m *= np.where(self._sparse_weekly, 2.5 * weekly_on, 1.0)
        m *= np.where(self._sparse_monthly, 6.0 * monthly_on, 1.0)
        m *= d <= self._cut_day
        return m

    def _usage(
        self, rng: np.random.Generator, d: int, mult: npt.NDArray[np.float64]
    ) -> tuple[list[int], list[int], list[int], list[int]]:
        """One day of usage for all users, sorted by second of day: (secs, user index, event index, count)."""
        noise = rng.gamma(12.0, 1.0 / 12.0, self._n)  # day-to-day overdispersion per account
        lam = self._u_rate * (mult * noise)[self._u_acct]
        lam = np.where(d >= self._u_quit, lam * self._u_resid, lam)
        users = np.repeat(np.arange(lam.size), rng.poisson(lam))
        k = users.size
        acct = self._u_acct[users]
        # Working-day diurnal shape in local time: morning and afternoon peaks plus some off-hours traffic.
        comp = rng.random(k)
        z = rng.standard_normal(k)
        hours = np.where(comp < 0.45, 10.5 + 1.3 * z, 14.5 + 1.6 * z)
        off_hours = comp >= 0.9
        hours[off_hours] = rng.random(int(off_hours.sum())) * 24.0
        secs = ((hours * HOUR).astype(np.int64) - self._tz_off[acct]) % DAY
        kinds = np.searchsorted(_USAGE_CUM, rng.random(k), side="right")
        counts = rng.geometric(0.85, k)
        keep = d * DAY + secs < self._cut[acct]
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
        pending: dict[int, list[tuple[int, dict[str, Any]]]],
        a: int,
        t: int,
        body: dict[str, Any],
    ) -> bool:
        """Emit a runtime-generated event today or queue it for a later day, unless it would be too late."""
        if t >= self._days * DAY or t >= self._cut[a]:
            return False
        ev = {"type": body.pop("type"), "account_id": self.account_ids[a], "ts": self._ts(t), **body}
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
        pending: dict[int, list[tuple[int, dict[str, Any]]]],
    ) -> list[tuple[int, dict[str, Any]]]:
        out: list[tuple[int, dict[str, Any]]] = []
        due = self._dom_accounts.get(today.day)
        if due is None or not due.size:
            return out
        fail = rng.random(due.size) < _TRANSIENT_FAILURE
        retry = rng.integers(1, 4, due.size)
        for a, f, r in zip(due.tolist(), fail.tolist(), retry.tolist(), strict=True):
            t = d * DAY + int(self._bill_sec[a])
            if t >= self._pay_cut[a]:
                continue
            body = {"mrr": float(mrr[a]), "plan": PLANS[int(plan[a])]}
            if f:
                self._put(d, out, pending, a, t, {"type": "billing", "kind": "payment_failed", **body})
                t += r * DAY
                if t >= self._pay_cut[a]:
                    continue
            self._put(d, out, pending, a, t, {"type": "billing", "kind": "payment_succeeded", **body})
        return out

    def _tickets(
        self,
        rng: np.random.Generator,
        d: int,
        today: date,
        mult: npt.NDArray[np.float64],
        pending: dict[int, list[tuple[int, dict[str, Any]]]],
    ) -> list[tuple[int, dict[str, Any]]]:
        """Background support load: mostly low/normal tickets, solved within hours to days, good CSAT."""
        out: list[tuple[int, dict[str, Any]]] = []
        factor = (
            _HOLIDAY_FACTOR
            if today in _holidays(today.year)
            else (_WEEKEND_SUPPORT if today.weekday() >= 5 else 1.0)
        )
        n_tickets = rng.poisson(self._support_rate * factor * (mult > 0))
        accts = np.repeat(np.arange(self._n), n_tickets)
        k = accts.size
        if not k:
            return out
        local = np.clip(rng.normal(13.0, 2.5, k), 6.0, 21.0) * HOUR
        opened = d * DAY + (local.astype(np.int64) - self._tz_off[accts]) % DAY
        pri = np.searchsorted(_BG_PRIORITY_CUM, rng.random(k), side="right")
        escalate = (pri >= 2) & (rng.random(k) < 0.25)
        esc_delay = rng.integers(1 * HOUR, 8 * HOUR, k)
        solve_delay = rng.lognormal(np.log(8 * HOUR), 1.0, k).astype(np.int64) + 600
        csat = rng.random(k) < 0.35
        csat_delay = rng.integers(600, 2 * DAY, k)
        score = np.searchsorted(_CSAT_GOOD_CUM, rng.random(k), side="right") + 1
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


class EventSource(Protocol):
    """What :func:`write_jsonl` needs: a :class:`Simulation` or a :class:`streams.dev.shapes.ShapedBase`."""

    def events(self) -> Iterator[dict[str, Any]]: ...

    def truth(self) -> list[dict[str, Any]]: ...


def write_jsonl(sim: EventSource, events_path: Path, truth_path: Path | None = None) -> int:
    """Write ``sim``'s events (and optionally its truth table) as JSON lines.

    Parameters
    ----------
    sim : EventSource
        The simulation to serialise.
    events_path : Path
        Destination of the events, one orjson-encoded object per line.
    truth_path : Path, optional
        Destination of the truth rows, same format.

    Returns
    -------
    int
        Number of events written.
    """
    n = 0
    with Path(events_path).open("wb") as fh:
        batch: list[bytes] = []
        for ev in sim.events():
            batch.append(orjson.dumps(ev))
            if len(batch) >= 8192:
                fh.write(b"\n".join(batch) + b"\n")
                n += len(batch)
                batch.clear()
        if batch:
            fh.write(b"\n".join(batch) + b"\n")
            n += len(batch)
    if truth_path is not None:
        with Path(truth_path).open("wb") as fh:
            for row in sim.truth():
                fh.write(orjson.dumps(row) + b"\n")
    return n
