"""Backtest of a replay: churnwatch's risk against simple baselines on the outcomes found in the same file.

Outcome (:class:`OutcomeMode`): an explicit ``subscription_canceled`` within the horizon, or, for files
without cancellations (purchase logs), no usage for the whole horizon; ``auto`` picks the first when the file
has any cancellation. Two views, both computed on the same accounts:

* **ranking**: at each as-of midnight, every account with usage before it and not yet cancelled is scored by
  churnwatch (the risk its sweep computed at that midnight) and by each baseline of
  :mod:`streams.offline.baselines`; AUC (± Hanley-McNeil SE) for "churns within ``horizon_days``". As-of
  points need a full horizon after them. The figure per scorer is the mean over as-of points (its SE is the
  mean SE: no credit for the repetition).
* **alerts**: churnwatch's opened ``account_risk`` episodes; each baseline "alerts" when its daily score
  crosses a threshold upwards, the threshold chosen so that it raises as many alerts per non-churner
  account-month as churnwatch did (the same alert budget). Churners flagged (an opening within
  ``lookback_days`` before the churn; ``ahead`` when at least ``lead_min_days`` before), lead time, alerts on
  non-churners per account per 30 days, and precision over the episodes whose outcome is known (followed by a
  churn within the lookback, or opened at least a lookback before the end of the file).

A churn happens at the cancellation; with the inactivity outcome, when the horizon of silence has passed
after the last activity (the moment the definition is met). Times are in epoch days (floats).

Size: ~420 lines, just over the ~400 aim: ranking (AUC and its error per as-of point) and the alert
statistics are one computation over the same per-day score matrix and churn days; the baseline scores
themselves are in ``streams/offline/baselines.py`` and the CLI rendering in ``streams/cli/backtest.py``.
Split them when a third kind of measure arrives.
"""

from __future__ import annotations

import statistics
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.alerts import AlertKind, Transition
from detectors.windows import DAY_MS
from streams.offline.baselines import (
    BASELINE_LABELS,
    BASELINES,
    ActivityMatrix,
    AucResult,
    BaselineScorer,
    auc,
)
from streams.offline.replay import ReplayResult, rfc3339

CHURNWATCH = "churnwatch"


class OutcomeMode(StrEnum):
    AUTO = "auto"
    CANCEL = "cancel"
    INACTIVE = "inactive"
    EITHER = "either"


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestConfig:
    horizon_days: int = 30
    outcome: OutcomeMode = OutcomeMode.AUTO
    as_of_days: tuple[int, ...] = ()  # epoch days; empty = up to ``max_as_of`` evenly spaced
    max_as_of: int = 4
    min_active_days: int = 1  # ranking population: accounts with at least this many active days (2: repeat)
    max_accounts: int = 50_000  # larger files are compared on a fixed pseudo-random sample of accounts
    lookback_days: int = 60
    lead_min_days: int = 7
    warmup_days: int = 21


class EveryNthMidnight:
    """A ``snapshot_ms`` container for :func:`streams.offline.replay.run_replay`: every ``n``-th UTC
    midnight."""

    def __init__(self, n: int = 7) -> None:
        self.n = n

    def __contains__(self, ms: object) -> bool:
        return isinstance(ms, int) and ms % DAY_MS == 0 and (ms // DAY_MS) % self.n == 0

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


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


@dataclass(slots=True)
class ScorerResult:
    name: str
    auc: AucResult | None
    per_as_of: list[AucResult | None]
    alerts: AlertStats


@dataclass(slots=True)
class Backtest:
    outcome: OutcomeMode
    horizon_days: int
    as_of_days: list[int]
    scorers: dict[str, ScorerResult]
    churn_day: dict[str, float]
    nonchurners: list[str]
    end_day: float
    warm_day: float
    lead_min: int = 7

    @property
    def best_baseline(self) -> ScorerResult | None:
        ranked = [s for n, s in self.scorers.items() if n != CHURNWATCH and s.auc is not None]
        return max(ranked, key=lambda s: s.auc.auc if s.auc else 0.0, default=None)

    def verdict(self) -> str:
        ours, best = self.scorers[CHURNWATCH].auc, self.best_baseline
        if ours is None or best is None or best.auc is None:
            return "no verdict: the file has no as-of point with both churners and non-churners"
        label = BASELINE_LABELS[best.name]
        if ours.auc > best.auc.auc:
            return (
                f"churnwatch ranks better than the best simple baseline ({label}): "
                f"AUC {ours.auc:.3f} vs {best.auc.auc:.3f}"
            )
        return (
            f"churnwatch does NOT beat the best simple baseline ({label}): "
            f"AUC {ours.auc:.3f} vs {best.auc.auc:.3f} (± {best.auc.se:.3f})"
        )

    def to_dict(self) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for name, s in self.scorers.items():
            a = s.alerts
            rows[name] = {
                "auc": s.auc.auc if s.auc else None,
                "auc_se": s.auc.se if s.auc else None,
                "cases": s.auc.n if s.auc else 0,
                "positives": s.auc.positives if s.auc else 0,
                "auc_per_as_of": [r.auc if r else None for r in s.per_as_of],
                "alert_threshold": a.threshold,
                "churners": a.churners,
                "churners_flagged_share": round(a.flagged / a.churners, 4) if a.churners else None,
                f"churners_flagged_{self.lead_min}d_ahead_share": (
                    round(a.flagged_ahead_share, 4) if a.flagged_ahead_share is not None else None
                ),
                "lead_days_median": a.lead_median,
                "lead_days_p25": a.lead_p25,
                "nonchurner_alerts_per_30_days": a.nonchurner_alerts_per_30d,
                "precision_judged": a.precision,
                "alerts_judged": a.judged,
            }
        return {
            "outcome": self.outcome.value,
            "horizon_days": self.horizon_days,
            "accounts_compared": len(self.nonchurners) + len(self.churn_day),
            "as_of": [rfc3339(d * DAY_MS) for d in self.as_of_days],
            "scorers": rows,
            "verdict": self.verdict(),
        }


def plan_as_of(
    first_day: int, end_day: int, cfg: BacktestConfig, available: set[int] | None = None
) -> list[int]:
    """Up to ``cfg.max_as_of`` evenly spaced as-of days after warm-up, a full horizon before ``end_day``."""
    lo, hi = first_day + max(cfg.warmup_days, 28), end_day - cfg.horizon_days
    candidates = [d for d in range(lo, hi + 1) if available is None or d in available]
    if len(candidates) <= cfg.max_as_of:
        return candidates
    step = (len(candidates) - 1) / max(cfg.max_as_of - 1, 1)
    return sorted({candidates[round(i * step)] for i in range(cfg.max_as_of)})


def _mean_auc(results: list[AucResult | None]) -> AucResult | None:
    present = [r for r in results if r is not None]
    if not present:
        return None
    return AucResult(
        round(statistics.fmean(r.auc for r in present), 4),
        round(statistics.fmean(r.se for r in present), 4),
        sum(r.n for r in present),
        sum(r.positives for r in present),
    )


def churn_days(
    result: ReplayResult, matrix: ActivityMatrix, mode: OutcomeMode, horizon: int, end_day: float
) -> dict[str, float]:
    """When each churner churned (epoch days), by the outcome rule."""
    out: dict[str, float] = {}
    if mode in (OutcomeMode.CANCEL, OutcomeMode.EITHER):
        out.update({a: ms / DAY_MS for a, ms in result.cancellations.items()})
    if mode in (OutcomeMode.INACTIVE, OutcomeMode.EITHER):
        active = matrix.counts > 0
        last = matrix.counts.shape[1] - 1 - np.argmax(active[:, ::-1], axis=1)
        for i, account in enumerate(matrix.accounts):
            if active[i].any():
                declared = matrix.day0 + float(last[i]) + 1 + horizon
                if declared <= end_day:
                    out[account] = min(out.get(account, declared), declared)
    return out


def _labels(rows: npt.NDArray[np.int64], accounts: list[str], t: int, ctx: _Context) -> npt.NDArray[np.bool_]:
    h = ctx.cfg.horizon_days
    y = np.zeros(len(rows), dtype=bool)
    if ctx.mode in (OutcomeMode.CANCEL, OutcomeMode.EITHER):
        cancels = ctx.result.cancellations
        y |= np.array([t * DAY_MS < cancels.get(accounts[r], -1) <= (t + h) * DAY_MS for r in rows])
    if ctx.mode in (OutcomeMode.INACTIVE, OutcomeMode.EITHER):
        i = t - ctx.matrix.day0
        y |= (ctx.scorer.cum[rows, min(i + h, ctx.scorer.cum.shape[1] - 1)] - ctx.scorer.cum[rows, i]) == 0
    return y


@dataclass(slots=True)
class _Context:
    result: ReplayResult
    cfg: BacktestConfig
    mode: OutcomeMode
    matrix: ActivityMatrix
    scorer: BaselineScorer


def _rank_at(t: int, ctx: _Context) -> dict[str, AucResult | None]:
    matrix, accounts = ctx.matrix, ctx.matrix.accounts
    risks = ctx.result.snapshots.get(t * DAY_MS, {})
    i = t - matrix.day0
    cancels = ctx.result.cancellations
    rows = np.array(
        [
            r
            for r in range(len(accounts))
            if ctx.scorer.active[r, i] >= ctx.cfg.min_active_days
            and accounts[r] in risks
            and cancels.get(accounts[r], t * DAY_MS + 1) > t * DAY_MS
        ],
        dtype=np.int64,
    )
    if len(rows) < 2:
        return dict.fromkeys((CHURNWATCH, *BASELINES))
    y = _labels(rows, accounts, t, ctx)
    out: dict[str, AucResult | None] = {CHURNWATCH: auc([risks[accounts[r]] for r in rows], y)}
    params = ctx.scorer.fit(i, rows)
    for name, values in ctx.scorer.scores(i, rows, params).items():
        out[name] = auc(values, y)
    return out


def backtest(result: ReplayResult, cfg: BacktestConfig | None = None) -> Backtest | None:
    """Rank and alert metrics of churnwatch and the baselines over a replay run with ``record_activity``.

    None when the replay recorded no activity (or the file had no usage).
    """
    cfg = cfg or BacktestConfig()
    if not result.activity or result.clock_ms is None:
        return None
    activity = result.activity
    if len(activity) > cfg.max_accounts:  # bounded memory: ~32 bytes per account-day
        keep = sorted(activity, key=lambda account: zlib.crc32(account.encode()))[: cfg.max_accounts]
        activity = {account: activity[account] for account in keep}
    day0 = min(min(days) for days in activity.values())
    end_day = result.clock_ms / DAY_MS
    n_days = int(end_day) - day0 + 1
    matrix = ActivityMatrix.from_days(activity, day0, n_days)
    mode = cfg.outcome
    if mode is OutcomeMode.AUTO:
        mode = OutcomeMode.CANCEL if result.cancellations else OutcomeMode.INACTIVE
    ctx = _Context(result, cfg, mode, matrix, BaselineScorer(matrix, cfg.horizon_days))
    available = {ms // DAY_MS for ms in result.snapshots}
    as_of = [d for d in (cfg.as_of_days or plan_as_of(day0, int(end_day), cfg, available)) if d in available]
    as_of = [d for d in as_of if d + cfg.horizon_days <= end_day and d > day0]
    per: dict[str, list[AucResult | None]] = {n: [] for n in (CHURNWATCH, *BASELINES)}
    for t in as_of:
        for name, value in _rank_at(t, ctx).items():
            per[name].append(value)
    churn = {
        a: c for a, c in churn_days(result, matrix, mode, cfg.horizon_days, end_day).items() if a in activity
    }
    warm = day0 + cfg.warmup_days
    nonchurners = [a for a in matrix.accounts if a not in churn]
    alerts = _all_alert_stats(ctx, churn, nonchurners, warm, end_day)
    scorers = {n: ScorerResult(n, _mean_auc(per[n]), per[n], alerts[n]) for n in per}
    return Backtest(
        mode, cfg.horizon_days, as_of, scorers, churn, nonchurners, end_day, warm, cfg.lead_min_days
    )


# -- alerts -------------------------------------------------------------------------------------------------


def alert_stats(
    openings: dict[str, list[float]],
    churn: dict[str, float],
    nonchurner_days: float,
    warm: float,
    end_day: float,
    cfg: BacktestConfig,
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


def _all_alert_stats(
    ctx: _Context, churn: dict[str, float], nonchurners: list[str], warm: float, end_day: float
) -> dict[str, AlertStats]:
    matrix, cfg = ctx.matrix, ctx.cfg
    first = ctx.scorer.first + matrix.day0
    non_days = sum(
        max(0.0, end_day - max(warm, float(first[i])))
        for i, a in enumerate(matrix.accounts)
        if a not in churn and not np.isnan(first[i])
    )
    ours: dict[str, list[float]] = {}
    compared = set(matrix.accounts)
    for alert in ctx.result.alerts:
        if alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED:
            t = alert.event_ts_ms / DAY_MS
            if t >= warm and alert.account_id in compared:
                ours.setdefault(alert.account_id, []).append(t)
    threshold = ctx.result.config.alert_threshold
    out = {CHURNWATCH: alert_stats(ours, churn, non_days, warm, end_day, cfg, threshold)}
    target = out[CHURNWATCH].nonchurner_alerts_per_30d or 0.0
    days = np.arange(matrix.counts.shape[1]) + matrix.day0
    stop = np.array([churn.get(a, np.inf) for a in matrix.accounts])
    valid = (days[None, :] >= warm) & (days[None, :] < stop[:, None])
    is_non = np.array([a not in churn for a in matrix.accounts])
    # Daily BG/NBD scores use the parameters fitted on the whole file (as a batch user of it would).
    params = ctx.scorer.fit(matrix.counts.shape[1], np.flatnonzero(~np.isnan(ctx.scorer.first)))
    for name in BASELINES:
        daily = ctx.scorer.daily(name, params)
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
    return out
