"""Backtest of a replay: churnwatch's risk against simple baselines on the outcomes found in the same file.

Outcome (:class:`OutcomeMode`): an explicit ``subscription_canceled`` within the horizon, or, for files
without cancellations (purchase logs), no usage for the whole horizon; ``auto`` picks the first when the file
has any cancellation. Two views, both computed on the same accounts:

* **ranking**: at each as-of midnight, every account with usage before it and not yet cancelled is scored by
  churnwatch (the risk its sweep computed at that midnight) and by each baseline of
  :mod:`streams.offline.baselines`; AUC (± Hanley-McNeil SE) for "churns within ``horizon_days``". As-of
  points need a full horizon after them. The figure per scorer is the mean over as-of points (its SE is the
  mean SE: no credit for the repetition). Beside them, a batch model (:mod:`streams.offline.batch_model`: a
  logistic regression on 28-day counts fitted on the file's earlier outcomes) is ranked the same way, for the
  ranking only.
* **alerts**: churnwatch's opened ``account_risk`` episodes against each baseline's threshold crossings at
  the same alert budget: churners flagged, lead time, false alerts and precision, computed by
  :mod:`streams.offline.backtest_alerts` on the churn days found here.

A churn happens at the cancellation; with the inactivity outcome, when the horizon of silence has passed
after the last activity (the moment the definition is met). Times are in epoch days (floats).

This module holds the configuration, the outcomes, the ranking and :func:`backtest`, which runs both views;
the alert statistics are in ``streams/offline/backtest_alerts.py`` (it imports nothing from here), the
baseline scores themselves in ``streams/offline/baselines.py`` and the CLI rendering in
``streams/cli/backtest.py``.
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

from detectors.windows import DAY_MS
from streams.offline.backtest_alerts import AlertStats, all_alert_stats
from streams.offline.baselines import (
    BASELINE_LABELS,
    BASELINES,
    ActivityMatrix,
    AucResult,
    BaselineScorer,
    auc,
)
from streams.offline.batch_model import batch_scores
from streams.offline.replay import ReplayResult, rfc3339

CHURNWATCH = "churnwatch"
BATCH = "batch_model"
BATCH_LABEL = "batch model (logistic regression on 28-day counts, fitted on earlier outcomes)"


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
    batch_model: AucResult | None = None  # ranking only: mean over the as-of points, as the scorers'
    batch_per_as_of: list[AucResult | None] = field(default_factory=list)

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

    def batch_pair(self) -> tuple[float, float] | None:
        """The batch model's and churnwatch's mean AUC over the as-of points where both were ranked (the
        batch model has none at a point with no earlier outcomes to fit on, usually the first)."""
        ours = self.scorers[CHURNWATCH].per_as_of
        # strict=False: a Backtest built without the batch model has no batch points at all.
        both = [
            (b, o)
            for b, o in zip(self.batch_per_as_of, ours, strict=False)
            if b is not None and o is not None
        ]
        if not both:
            return None
        return statistics.fmean(b.auc for b, _ in both), statistics.fmean(o.auc for _, o in both)

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
        batch, pair = self.batch_model, self.batch_pair()
        return {
            "outcome": self.outcome.value,
            "horizon_days": self.horizon_days,
            "accounts_compared": len(self.nonchurners) + len(self.churn_day),
            "as_of": [rfc3339(d * DAY_MS) for d in self.as_of_days],
            "scorers": rows,
            "batch_model": {
                "auc": batch.auc if batch else None,
                "auc_se": batch.se if batch else None,
                "auc_per_as_of": [r.auc if r else None for r in self.batch_per_as_of],
                "churnwatch_same_points": round(pair[1], 4) if pair else None,
            },
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


def _ranked(t: int, ctx: _Context, risks: dict[str, float] | None = None) -> npt.NDArray[np.int64]:
    """Rows ranked at midnight ``t``: with enough active days before it, not yet cancelled and, when
    ``risks`` is given, scored by churnwatch at that midnight."""
    accounts, cancels = ctx.matrix.accounts, ctx.result.cancellations
    i = t - ctx.matrix.day0
    return np.array(
        [
            r
            for r in range(len(accounts))
            if ctx.scorer.active[r, i] >= ctx.cfg.min_active_days
            and (risks is None or accounts[r] in risks)
            and cancels.get(accounts[r], t * DAY_MS + 1) > t * DAY_MS
        ],
        dtype=np.int64,
    )


def _rank_at(t: int, ctx: _Context) -> dict[str, AucResult | None]:
    matrix, accounts = ctx.matrix, ctx.matrix.accounts
    risks = ctx.result.snapshots.get(t * DAY_MS, {})
    i = t - matrix.day0
    rows = _ranked(t, ctx, risks)
    if len(rows) < 2:
        return dict.fromkeys((CHURNWATCH, *BASELINES, BATCH))
    y = _labels(rows, accounts, t, ctx)
    out: dict[str, AucResult | None] = {CHURNWATCH: auc([risks[accounts[r]] for r in rows], y)}
    params = ctx.scorer.fit(i, rows)
    for name, values in ctx.scorer.scores(i, rows, params).items():
        out[name] = auc(values, y)
    out[BATCH] = _batch_auc(t, rows, y, ctx)
    return out


def _batch_auc(
    t: int, rows: npt.NDArray[np.int64], y: npt.NDArray[np.bool_], ctx: _Context
) -> AucResult | None:
    """The batch model's AUC at ``t``, fitted on the accounts one horizon earlier and their outcomes."""
    s = t - ctx.cfg.horizon_days
    if s <= ctx.matrix.day0:
        return None
    train = _ranked(s, ctx)
    if len(train) < 2:
        return None
    fitted = (s - ctx.matrix.day0, train, _labels(train, ctx.matrix.accounts, s, ctx))
    scores = batch_scores(ctx.scorer, fitted, t - ctx.matrix.day0, rows)
    return None if scores is None else auc(scores, y)


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
    per: dict[str, list[AucResult | None]] = {n: [] for n in (CHURNWATCH, *BASELINES, BATCH)}
    for t in as_of:
        for name, value in _rank_at(t, ctx).items():
            per[name].append(value)
    churn = {
        a: c for a, c in churn_days(result, matrix, mode, cfg.horizon_days, end_day).items() if a in activity
    }
    warm = day0 + cfg.warmup_days
    nonchurners = [a for a in matrix.accounts if a not in churn]
    ours, baselines = all_alert_stats(result, matrix, ctx.scorer, cfg, churn, warm, end_day)
    alerts = {CHURNWATCH: ours, **baselines}
    scorers = {n: ScorerResult(n, _mean_auc(per[n]), per[n], alerts[n]) for n in per if n != BATCH}
    return Backtest(
        mode,
        cfg.horizon_days,
        as_of,
        scorers,
        churn,
        nonchurners,
        end_day,
        warm,
        cfg.lead_min_days,
        _mean_auc(per[BATCH]),
        per[BATCH],
    )
