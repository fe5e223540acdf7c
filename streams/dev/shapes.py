"""Customer bases shaped unlike :mod:`streams.dev.simulator`: randomised mixes of how customers use and leave.

Where the simulator has a fixed set of archetypes tuned alongside the detectors, this generator draws, per
seed, the proportions of each :class:`Shape` (Dirichlet around the mix's base shares) and each account's
shape parameters (uniform within the mix's ranges). The mixes are fixed in advance
(:mod:`streams.dev.shape_mixes`):

* ``tuning`` (:data:`TUNING`): steady, weekday-only, sparse and vacation accounts; churn driven by a low
  engagement *level*, gradual fades, abrupt drops, silent churn and involuntary churn (failed payments).
* ``heldout`` (:data:`HELDOUT`): other proportions and ranges (slower fades, subtler drops, longer
  vacations), plus shapes absent from tuning: seasonal (month-end) accounts, one-time buyers, accounts that
  join during the horizon and a holiday week shared by everyone (usage at 10-30 %).
* ``shifted`` (:data:`SHIFTED`, a second held-out mix): churn mostly from a low level and recency (more
  level-driven churners, sparse accounts and one-time buyers, a third of the accounts joining late, few
  abrupt drops), wider levels, a milder and earlier holiday week.
* ``distant`` (:data:`DISTANT`, a third held-out mix, issue 14's eighth pass): B2B-like (more weekday-only
  and seasonal accounts, vacations of up to four weeks), churn mostly from fades and card failures, short
  leads, a late and strong holiday week.
* ``far`` (:data:`FAR`, a fourth held-out mix, issue 14's ninth pass): consumer-like (wide levels, very
  sparse accounts, many short vacations, late joiners), subtle and slow churn (levels close to healthy,
  long fades, shallow drops, long silences), an early and mild holiday week.
* ``rhythm`` (:data:`RHYTHM`, tuning, issue 14's tenth pass): the tuning mix with a tenth of its accounts
  busy in the middle of each month (days 12-18), to tune on monthly rhythms.
* ``remote`` (:data:`REMOTE`, a fifth held-out mix, issue 14's tenth pass): monthly rhythms busy at the start
  of each month, sparse accounts, vacations of one to three weeks, churn from every cause, late joiners,
  a mid-to-late holiday week.
* ``plain`` (:data:`PLAIN`, a sixth held-out mix, issue 14's tenth pass): a plain B2B base, mostly steady
  and weekday-only accounts, a few of every other shape, monthly accounts busy on the 8th-12th.
* ``smb`` (:data:`SMB`, a seventh held-out mix, issue 14's eleventh pass): a small-business base with some
  of every shape, level churners close to healthy, busier sparse accounts, vacations of 4-18 days.
* ``thin`` (:data:`THIN`, an eighth held-out mix, issue 14's twelfth pass): a thinly engaged base, a quarter
  of it sparse (active on 10-30 % of days), wide spread of levels, one-time buyers, level churners, early
  monthly rhythms (days 5-10), vacations of up to three weeks, an early holiday week.
* ``festive`` (:data:`FESTIVE`, a ninth held-out mix, issue 14's seventeenth pass): a base whose calendar is
  the main event: a strong holiday week mid-horizon (usage at 5-25 %), mostly steady and weekday-only
  accounts, vacations of 5-16 days, monthly accounts busy on the 20th-25th, churn from every cause.
* ``shop`` (:data:`SHOP`, a tenth held-out mix, issue 14's eighteenth pass): a consumer-like shop with an
  early-to-mid holiday week (usage at 10-35 %), more sparse accounts and one-time buyers, wide levels,
  vacations of 7-21 days, a fifth joining late, churn from every cause.
* ``office`` (:data:`OFFICE`, an eleventh held-out mix, issue 14's nineteenth pass): office software with a
  late holiday week (usage at 5-30 %), many weekday-only accounts, long vacations (10-28 days), monthly
  accounts busy mid-month, slow fades and card failures.
* ``studio`` (:data:`STUDIO`, a twelfth held-out mix, issue 14's twentieth pass): design tools with a
  mid-to-late holiday week (usage at 10-30 %), many steady and sparse accounts, abrupt drops and silent
  churners more common than fades, short vacations (4-14 days), month-end rhythms, late joiners.
* ``agency`` (:data:`AGENCY`, a thirteenth held-out mix, issue 14's twenty-first pass): an agency base with
  a late, strong holiday week (usage at 5-20 %), steady and weekday-only accounts, vacations of 5-21 days,
  monthly accounts busy on the 3rd-8th, churn of every cause.
* ``firm`` and ``campus`` (:data:`~streams.dev.shape_mixes.FIRM`, :data:`~streams.dev.shape_mixes.CAMPUS`,
  the fourteenth and fifteenth held-out mixes, issue 14's twenty-second pass): B2B software with a late,
  strong holiday week (usage at 3-15 %), many weekday-only accounts, slow fades and card failures; and tools
  for schools with a mid-horizon holiday week, long vacations (7-28 days) and late joiners.
* ``works`` and ``bureau`` (:data:`~streams.dev.shape_mixes.WORKS`, :data:`~streams.dev.shape_mixes.BUREAU`,
  the sixteenth and seventeenth held-out mixes, issue 14's twenty-third pass): manufacturing software,
  mostly steady and weekday-only, with a late, strong holiday week (usage at 2-12 %); and professional
  services firms with a holiday week in the second half (3-15 %), vacations of 7-21 days, late joiners.
* ``guild`` (:data:`~streams.dev.shape_mixes.GUILD`, the eighteenth held-out mix, issue 14's twenty-fourth
  pass): membership and community platforms, many sparse and month-rhythm accounts (busy on the 1st-6th), a
  holiday week in the first half (usage at 5-25 %), vacations of 6-20 days, fades and silent churn.

Usage per account-day is Poisson around ``level x weekday factor x shape modifier``, split over up to three
users. Every churner ends with ``subscription_canceled`` at its churn time (involuntary churners after
failed payments); accounts pay monthly. :meth:`ShapedBase.truth` says who churns, when, why, and each
account's shape and vacation; :meth:`ShapedBase.holidays` gives the shared holiday week.

>>> base = ShapedBase(ShapesConfig(mix="heldout", seed=200, accounts=40, days=60))
>>> events = list(base.events())
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
>>> events == list(ShapedBase(ShapesConfig(mix="heldout", seed=200, accounts=40, days=60)).events())
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.dev.shape_mixes import (
    CHURNING,
    DISTANT,
    FAR,
    HELDOUT,
    MIXES,
    REMOTE,
    RHYTHM,
    SHIFTED,
    TUNING,
    Mix,
    Shape,
)
from streams.dev.simulator.days import sec_suffixes

__all__ = [
    "DISTANT",
    "FAR",
    "HELDOUT",
    "MIXES",
    "REMOTE",
    "RHYTHM",
    "SHIFTED",
    "TUNING",
    "Mix",
    "Shape",
    "ShapedBase",
    "ShapesConfig",
]

DAY = 86_400


_REASONS = {
    Shape.LOW_LEVEL: "low_engagement",
    Shape.GRADUAL_FADE: "faded",
    Shape.ABRUPT_DROP: "dropped",
    Shape.SILENT: "silent",
    Shape.INVOLUNTARY: "payment_failed",
    Shape.ONE_TIME: "one_time",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ShapesConfig:
    mix: str = "tuning"
    seed: int = 100
    accounts: int = 1000
    days: int = 150
    start: datetime = field(default=datetime(2026, 6, 1, tzinfo=UTC))
    holiday: bool = True  # False: the same accounts and plans without the mix's holiday week (a control)

    def __post_init__(self) -> None:
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {sorted(MIXES)}")
        if self.accounts < 1 or self.days < 28:
            raise ValueError("accounts must be >= 1 and days >= 28")


@dataclass(slots=True)
class _Account:
    shape: Shape
    level: float
    join: int  # first day of usage
    churn: int | None = None  # day index of the cancellation (may be >= days: after the horizon)
    vacation: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)


class ShapedBase:
    """A generated customer base: :meth:`events` (sorted by ``ts``), :meth:`truth`, :meth:`holidays`."""

    def __init__(self, config: ShapesConfig) -> None:
        self.config = config
        self.mix = MIXES[config.mix]
        rng = np.random.default_rng([config.seed, 11])
        self.day0 = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
        shapes = list(self.mix.shares)
        base = np.array([self.mix.shares[s] for s in shapes])
        self.shares = dict(
            zip(shapes, rng.dirichlet(base / base.sum() * self.mix.concentration), strict=True)
        )
        drawn = rng.choice(len(shapes), size=config.accounts, p=list(self.shares.values()))
        self.accounts = [self._plan(rng, shapes[int(k)]) for k in drawn]
        self.ids = [f"shp-{i:06d}" for i in range(config.accounts)]
        self._holiday: tuple[int, int] | None = None
        if self.mix.holiday_week is not None:
            first = int(rng.uniform(*self.mix.holiday_week) * config.days)
            self._holiday = (first, first + 7)
            self._holiday_level = float(rng.uniform(*self.mix.holiday_level))
            if not config.holiday:
                self._holiday = None

    # -- planning ------------------------------------------------------------------------------------------

    def _plan(self, rng: np.random.Generator, shape: Shape) -> _Account:
        mix, days = self.mix, self.config.days
        level = float(12.0 * np.exp(rng.normal(0.0, mix.level_sigma)))
        join = int(rng.integers(1, days // 2)) if rng.random() < mix.late_join else 0
        account = _Account(shape, level, join)
        if shape is Shape.LOW_LEVEL:
            account.level = float(12.0 * rng.uniform(*mix.low_level) * np.exp(rng.normal(0.0, 0.3)))
        if shape is Shape.ONE_TIME:
            account.join = int(rng.integers(0, days - 20))
            account.churn = account.join + int(rng.integers(20, 46))
        elif shape in CHURNING:
            lo, hi = mix.churn_window
            account.churn = max(account.join + 35, int(rng.uniform(lo, hi * 1.15) * days))
        if shape is Shape.VACATION:
            length = int(rng.uniform(*mix.vacation_days))
            first = int(rng.integers(max(account.join, 0) + 35, max(days - length, account.join + 36)))
            account.vacation = (first, first + length)
        return account

    # -- usage ---------------------------------------------------------------------------------------------

    def _rates(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        """Expected usage per account and day (0 outside the account's life)."""
        n, days = len(self.accounts), self.config.days
        weekday = np.array([(self.day0 + timedelta(days=d)).weekday() for d in range(days)])
        dom = np.array([(self.day0 + timedelta(days=d)).day for d in range(days)])
        rates = np.zeros((n, days))
        day = np.arange(days, dtype=np.float64)
        for i, a in enumerate(self.accounts):
            r = np.full(days, a.level) * np.where(weekday >= 5, rng.uniform(0.2, 0.6), 1.0)
            params = self._shape_params(rng, a)
            if a.shape is Shape.WEEKDAY_ONLY:
                r[weekday >= 5] = 0.0
            elif a.shape is Shape.SPARSE:
                r = np.where(rng.random(days) < params, a.level, 0.0)
            elif a.shape is Shape.SEASONAL:
                lo, hi = self.mix.seasonal_days
                busy = (dom >= lo) & (dom <= hi)
                r = np.where(busy, a.level * 2.5, np.where(rng.random(days) < 0.1, a.level * 0.3, 0.0))
            elif a.shape is Shape.GRADUAL_FADE and a.churn is not None:
                start = a.churn - params
                r *= np.clip(1.0 - (day - start) / max(params, 1.0), 0.03, 1.0)
            elif a.shape is Shape.ABRUPT_DROP and a.churn is not None:
                r[day >= a.churn - params[0]] *= params[1]
            elif a.shape is Shape.SILENT and a.churn is not None:
                r[day >= a.churn - params] = 0.0
            elif a.shape is Shape.ONE_TIME:
                r[:] = 0.0
                r[a.join : a.join + int(rng.integers(1, 4))] = a.level * 2
            if a.vacation is not None:
                r[a.vacation[0] : a.vacation[1]] *= 0.02
            r[: a.join] = 0.0
            if a.churn is not None:
                r[a.churn :] = 0.0
            rates[i] = r
        if self._holiday is not None:
            rates[:, self._holiday[0] : self._holiday[1]] *= self._holiday_level
        return rates

    def _shape_params(self, rng: np.random.Generator, a: _Account) -> Any:
        mix = self.mix
        if a.shape is Shape.SPARSE:
            return rng.uniform(*mix.sparse_p)
        if a.shape is Shape.GRADUAL_FADE:
            return int(rng.uniform(*mix.fade_days))
        if a.shape is Shape.ABRUPT_DROP:
            return int(rng.uniform(*mix.drop_lead_days)), rng.uniform(*mix.drop_to)
        if a.shape is Shape.SILENT:
            return int(rng.uniform(*mix.silent_days))
        return None

    # -- events --------------------------------------------------------------------------------------------

    def _billing(self, rng: np.random.Generator) -> dict[int, list[tuple[int, dict[str, Any]]]]:
        """Subscription, monthly payments, dunning and cancellations, by day index."""
        out: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        days = self.config.days

        def put(day: int, body: dict[str, Any]) -> None:
            if day < days:
                out.setdefault(day, []).append((int(rng.integers(8 * 3600, 20 * 3600)), body))

        for i, a in enumerate(self.accounts):
            seats = max(1, round(a.level / 4))
            mrr = float(15 * seats)
            plan = "basic" if seats < 3 else "team" if seats < 10 else "business"
            base = {"type": "billing", "account_id": self.ids[i], "mrr": mrr, "plan": plan}
            put(a.join, {**base, "kind": "subscription_created"})
            end = a.churn if a.churn is not None else days
            renewal = a.join + int(rng.integers(1, 29))
            if a.shape is Shape.INVOLUNTARY and a.churn is not None:
                dunning = int(rng.integers(7, 22))
                first_fail = a.churn - dunning
                for t in range(first_fail, a.churn, max(2, dunning // 3)):
                    put(t, {**base, "kind": "payment_failed"})
                end = first_fail
            while renewal < end:
                put(renewal, {**base, "kind": "payment_succeeded"})
                renewal += 30
            if a.churn is not None:
                put(a.churn, {**base, "kind": "subscription_canceled"})
        return out

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event in timestamp order; identical for identical configs."""
        rng = np.random.default_rng([self.config.seed, 12])
        counts = rng.poisson(self._rates(rng))
        billing = self._billing(rng)
        suffixes = sec_suffixes()
        for d in range(self.config.days):
            prefix = (self.day0 + timedelta(days=d)).strftime("%Y-%m-%dT")
            today: list[tuple[int, dict[str, Any]]] = list(billing.get(d, []))
            for i in np.flatnonzero(counts[:, d]).tolist():
                total = int(counts[i, d])
                users = min(3, total, max(1, round(self.accounts[i].level / 4)))
                split = np.bincount(rng.integers(0, users, total), minlength=users)
                for u, c in enumerate(split.tolist()):
                    if c:
                        body = {
                            "type": "usage",
                            "account_id": self.ids[i],
                            "event": "report_viewed" if u else "page_viewed",
                            "user_id": f"{self.ids[i]}-u{u}",
                            "count": c,
                        }
                        today.append((int(rng.integers(7 * 3600, 21 * 3600)), body))
            today.sort(key=lambda item: item[0])
            for sec, body in today:
                yield {**body, "ts": prefix + suffixes[sec]}

    # -- ground truth --------------------------------------------------------------------------------------

    def _ts(self, day: int) -> str:
        return (self.day0 + timedelta(days=day)).strftime("%Y-%m-%dT00:00:00Z")

    def truth(self) -> list[dict[str, Any]]:
        """One row per account: shape, level, join day, whether/when/why it churned, vacation."""
        days = self.config.days
        rows = []
        for i, a in enumerate(self.accounts):
            churned = a.churn is not None and a.churn < days
            rows.append(
                {
                    "account_id": self.ids[i],
                    "shape": a.shape.value,
                    "level": round(a.level, 3),
                    "join_day": a.join,
                    "churned": churned,
                    "churn_day": a.churn if churned else None,
                    "churn_reason": _REASONS[a.shape] if churned else None,
                    "vacation": [self._ts(v) for v in a.vacation] if a.vacation else None,
                }
            )
        return rows

    def holidays(self) -> list[tuple[date, date]]:
        """The shared holiday week(s), [first day, day after the last)."""
        if self._holiday is None:
            return []
        first, end = self._holiday
        return [((self.day0 + timedelta(days=first)).date(), (self.day0 + timedelta(days=end)).date())]
