"""The backtest's alert statistics: churnwatch's alerts and each baseline's at the same alert budget.

Churnwatch's alerts are its opened ``account_risk`` episodes; each baseline of
:mod:`streams.offline.baselines` "alerts" when its daily score crosses a threshold upwards, the threshold
chosen so that it raises as many alerts per non-churner account-month as churnwatch did (the same alert
budget). For each: churners flagged (an opening within ``lookback_days`` before the churn; ``ahead`` when at
least ``lead_min_days`` before), lead time, alerts on non-churners per account per 30 days, and precision over
the episodes whose outcome is known (followed by a churn within the lookback, or opened at least a lookback
before the end of the file). Times are in epoch days (floats).

:func:`streams.offline.backtest.backtest` calls :func:`all_alert_stats` with the churn days it found and
keeps the results next to its ranking; this module imports nothing from it (the configuration is read
through :class:`AlertWindows`, which :class:`~streams.offline.backtest.BacktestConfig` satisfies).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from detectors.alerts import AlertKind, Transition
from detectors.windows import DAY_MS
from streams.offline.baselines import BASELINES, ActivityMatrix, BaselineScorer
from streams.offline.replay import ReplayResult


class AlertWindows(Protocol):
    """The two windows the alert statistics read from the backtest's configuration."""

    @property
    def lookback_days(self) -> int: ...

    @property
    def lead_min_days(self) -> int: ...


@dataclass(slots=True)
class AlertStats:
    threshold: float | None
    churners: int
    flagged: int
    flagged_ahead: int
    lead_median: float | None
    lead_p25: float | None
    nonchurner_alerts_per_30d: float | None
    precision: float | None
    judged: int
    hits: int = 0
    leads: list[float] = field(default_factory=list, repr=False)
    openings: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def flagged_ahead_share(self) -> float | None:
        return self.flagged_ahead / self.churners if self.churners else None


def alert_stats(
    openings: dict[str, list[float]],
    churn: dict[str, float],
    nonchurner_days: float,
    warm: float,
    end_day: float,
    cfg: AlertWindows,
    threshold: float | None,
) -> AlertStats:
    """Churners flagged, lead, false alerts and judged precision of alert openings (epoch days).

    ``churn`` maps churners to when they churned; only those churning after ``warm`` count. An opening
    flags a churner within ``cfg.lookback_days`` before its churn (``ahead`` when at least
    ``cfg.lead_min_days`` before); openings on accounts not in ``churn`` are false alerts, per
    ``nonchurner_days`` / 30; an opening is judged when followed by the churn within the lookback or opened
    at least a lookback before ``end_day``.
    """
    lookback, ahead = cfg.lookback_days, cfg.lead_min_days
    leads: list[float] = []
    flagged_ahead = 0
    counted = {a: c for a, c in churn.items() if c >= warm}
    for account, c in counted.items():
        before = [t for t in openings.get(account, []) if c - lookback <= t < c]
        if before:
            leads.append(c - min(before))
            flagged_ahead += any(t <= c - ahead for t in before)
    false_alerts = sum(len(ts) for a, ts in openings.items() if a not in churn)
    judged = hits = 0
    for account, times in openings.items():
        churned_at = churn.get(account)
        for t in times:
            hit = churned_at is not None and t < churned_at <= t + lookback
            if hit or t + lookback <= end_day:
                judged += 1
                hits += hit
    return AlertStats(
        threshold=threshold,
        churners=len(counted),
        flagged=len(leads),
        flagged_ahead=flagged_ahead,
        lead_median=round(statistics.median(leads), 1) if leads else None,
        lead_p25=round(float(np.percentile(leads, 25)), 1) if leads else None,
        nonchurner_alerts_per_30d=round(false_alerts / (nonchurner_days / 30), 5)
        if nonchurner_days
        else None,
        precision=round(hits / judged, 4) if judged else None,
        judged=judged,
        hits=hits,
        leads=leads,
        openings=openings,
    )


def _crossings(daily: npt.NDArray[np.float32], threshold: float, valid: npt.NDArray[np.bool_]) -> Any:
    above = (daily >= threshold) & valid
    previous = np.zeros_like(above)
    previous[:, 1:] = above[:, :-1]
    return above & ~previous


def all_alert_stats(
    result: ReplayResult,
    matrix: ActivityMatrix,
    scorer: BaselineScorer,
    cfg: AlertWindows,
    churn: dict[str, float],
    warm: float,
    end_day: float,
) -> tuple[AlertStats, dict[str, AlertStats]]:
    """Churnwatch's alert statistics, then each baseline's (by name) at churnwatch's alert budget.

    The accounts compared are ``matrix.accounts``; those not in ``churn`` are the non-churners.
    """
    first = scorer.first + matrix.day0
    non_days = sum(
        max(0.0, end_day - max(warm, float(first[i])))
        for i, a in enumerate(matrix.accounts)
        if a not in churn and not np.isnan(first[i])
    )
    ours: dict[str, list[float]] = {}
    compared = set(matrix.accounts)
    for alert in result.alerts:
        if alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED:
            t = alert.event_ts_ms / DAY_MS
            if t >= warm and alert.account_id in compared:
                ours.setdefault(alert.account_id, []).append(t)
    threshold = result.config.alert_threshold
    churnwatch = alert_stats(ours, churn, non_days, warm, end_day, cfg, threshold)
    target = churnwatch.nonchurner_alerts_per_30d or 0.0
    days = np.arange(matrix.counts.shape[1]) + matrix.day0
    stop = np.array([churn.get(a, np.inf) for a in matrix.accounts])
    valid = (days[None, :] >= warm) & (days[None, :] < stop[:, None])
    is_non = np.array([a not in churn for a in matrix.accounts])
    # Daily BG/NBD scores use the parameters fitted on the whole file (as a batch user of it would).
    params = scorer.fit(matrix.counts.shape[1], np.flatnonzero(~np.isnan(scorer.first)))
    out: dict[str, AlertStats] = {}
    for name in BASELINES:
        daily = scorer.daily(name, params)
        finite = np.isfinite(daily)
        scored = daily[finite & valid]
        grid = np.unique(np.quantile(scored, np.linspace(0.5, 1.0, 201))) if scored.size else np.array([])
        chosen: float | None = float(grid[-1]) + 1.0 if len(grid) else None
        lo, hi = 0, len(grid) - 1
        while lo <= hi:  # the lowest threshold whose non-churner alert rate stays within churnwatch's
            mid = (lo + hi) // 2
            opened = _crossings(daily, float(grid[mid]), valid & finite)
            rate = opened[is_non].sum() / (non_days / 30) if non_days else 0.0
            if rate <= target:
                chosen, hi = float(grid[mid]), mid - 1
            else:
                lo = mid + 1
        openings: dict[str, list[float]] = {}
        if chosen is not None:
            rows, cols = np.nonzero(_crossings(daily, chosen, valid & finite))
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                openings.setdefault(matrix.accounts[r], []).append(float(days[c]))
        out[name] = alert_stats(openings, churn, non_days, warm, end_day, cfg, chosen)
    return churnwatch, out
