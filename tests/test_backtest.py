"""The backtest: AUC, baselines, outcomes and alert metrics on inputs small enough to compute by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from detectors.windows import DAY_MS
from streams.cli.replay import replay
from streams.offline.backtest import (
    CHURNWATCH,
    Backtest,
    BacktestConfig,
    OutcomeMode,
    ScorerResult,
    backtest,
    plan_as_of,
)
from streams.offline.backtest_alerts import AlertStats, alert_stats
from streams.offline.baselines import AucResult, auc
from streams.offline.replay import run_replay

DAY0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) // 86_400  # a Monday
AS_OF = DAY0 + 42


def test_auc_with_ties_and_its_hanley_mcneil_error() -> None:
    # Positive-negative pairs: (.9,.8) win, (.9,.3) win, (.8,.8) tie = 1/2, (.8,.3) win -> 3.5 / 4.
    result = auc([0.9, 0.8, 0.8, 0.3], [1, 1, 0, 0])
    assert result is not None
    assert result.auc == 0.875
    # Hanley & McNeil (1982): Q1 = A/(2-A) = 7/9, Q2 = 2A^2/(1+A) = 49/60,
    # var = (A(1-A) + (2-1)(Q1-A^2) + (2-1)(Q2-A^2)) / (2*2) = 0.0431424...
    assert result.se == pytest.approx(0.2077074, abs=2e-6)
    assert (result.n, result.positives) == (4, 2)
    assert auc([0.1, 0.2], [0, 0]) is None


def test_as_of_points_are_spread_after_warm_up_with_a_full_horizon() -> None:
    cfg = BacktestConfig(horizon_days=30, warmup_days=21, max_as_of=4)
    assert plan_as_of(0, 200, cfg) == [28, 75, 123, 170]
    assert plan_as_of(0, 200, cfg, available={7 * k for k in range(30)}) == [28, 77, 119, 168]
    assert plan_as_of(0, 50, cfg) == []


def usage(account: str, day: int, count: int) -> bytes:
    ts = (DAY0 + day) * DAY_MS + 10 * 3_600_000
    return orjson.dumps({"type": "usage", "account_id": account, "ts": ts, "event": "x", "count": count})


def hand_made(cancel: bool = True) -> list[bytes]:
    """A: 5/day until day 34, cancels on day 50; B: 5/day; C: 1/day; D: 5/day until day 39, never cancels."""
    lines = []
    for day in range(70):
        if day <= 34:
            lines.append(usage("A", day, 5))
        lines.append(usage("B", day, 5))
        lines.append(usage("C", day, 1))
        if day <= 39:
            lines.append(usage("D", day, 5))
        if day == 50 and cancel:
            ts = (DAY0 + 50) * DAY_MS + 12 * 3_600_000
            lines.append(
                orjson.dumps(
                    {"type": "billing", "account_id": "A", "ts": ts, "kind": "subscription_canceled"}
                )
            )
    return lines


def run(lines: list[bytes], outcome: OutcomeMode) -> Backtest:
    result = run_replay(lines, snapshot_ms=[AS_OF * DAY_MS], record_activity=True)
    bt = backtest(result, BacktestConfig(horizon_days=14, outcome=outcome, as_of_days=(AS_OF,)))
    assert bt is not None
    assert bt.as_of_days == [AS_OF]
    return bt


def test_cancellation_outcome_by_hand() -> None:
    bt = run(hand_made(), OutcomeMode.AUTO)
    assert bt.outcome is OutcomeMode.CANCEL
    # As of day 42, only A cancels within 14 days. Days since last activity: A 8, B 1, C 1, D 3.
    since = bt.scorers["days_since_last"].auc
    assert since is not None and (since.auc, since.n, since.positives) == (1.0, 4, 1)
    # Minus usage in days 14-41: A -105, B -140, C -28, D -130: A beats B and D, not C.
    activity = bt.scorers["activity_28d"].auc
    assert activity is not None and activity.auc == pytest.approx(2 / 3, abs=1e-4)
    ours = bt.scorers[CHURNWATCH].auc
    assert ours is not None and ours.n == 4
    assert bt.churn_day == {"A": DAY0 + 50.5}


def test_inactivity_outcome_by_hand() -> None:
    for lines, outcome in ((hand_made(cancel=False), OutcomeMode.AUTO), (hand_made(), OutcomeMode.INACTIVE)):
        bt = run(lines, outcome)
        assert bt.outcome is OutcomeMode.INACTIVE
        # No usage in days 42-55: A and D. Days since last: A 8, D 3 above B 1, C 1.
        since = bt.scorers["days_since_last"].auc
        assert since is not None and (since.auc, since.positives) == (1.0, 2)
        # Activity scores C -28, A -105, D -130, B -140: (A,B) and (D,B) won, (A,C) and (D,C) lost.
        activity = bt.scorers["activity_28d"].auc
        assert activity is not None and activity.auc == 0.5
        # Inactive churn is declared 14 days after the last active day: A day 35 + 14, D day 40 + 14.
        assert bt.churn_day == {"A": DAY0 + 49.0, "D": DAY0 + 54.0}


def test_alert_metrics_by_hand() -> None:
    cfg = BacktestConfig(lookback_days=60, lead_min_days=7)
    openings = {"A": [40.0], "B": [30.0], "C": [95.0], "E": [47.0]}
    stats = alert_stats(openings, {"A": 50.0, "E": 50.0, "F": 10.0}, 60.0, 21.0, 100.0, cfg, 0.35)
    # Churners after warm-up: A (flagged 10 days ahead) and E (3 days ahead); F churned during warm-up.
    assert (stats.churners, stats.flagged, stats.flagged_ahead) == (2, 2, 1)
    assert stats.lead_median == 6.5
    # False alerts: B and C, over 60 non-churner days = 1 per 30 days.
    assert stats.nonchurner_alerts_per_30d == 1.0
    # Judged: A and E (followed by their churn) and B (60 days before the end); C's outcome is unknown.
    assert (stats.judged, stats.hits, stats.precision) == (3, 2, round(2 / 3, 4))


def _scorer(name: str, value: float) -> ScorerResult:
    empty = AlertStats(None, 0, 0, 0, None, None, None, None, 0)
    return ScorerResult(name, AucResult(value, 0.02, 100, 10), [], empty)


def test_verdict_says_when_churnwatch_loses() -> None:
    scorers = {CHURNWATCH: _scorer(CHURNWATCH, 0.48), "days_since_last": _scorer("days_since_last", 0.76)}
    bt = Backtest(OutcomeMode.INACTIVE, 90, [1], scorers, {}, [], 100.0, 21.0)
    assert bt.verdict() == (
        "churnwatch does NOT beat the best simple baseline (days since last activity): "
        "AUC 0.480 vs 0.760 (± 0.020)"
    )
    scorers[CHURNWATCH] = _scorer(CHURNWATCH, 0.8)
    assert bt.verdict().startswith("churnwatch ranks better than the best simple baseline")


def test_replay_report_and_summary_carry_the_comparison(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("replay")(replay)
    app.command("noop")(lambda: None)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(hand_made(cancel=False)) + b"\n")
    report = tmp_path / "report.json"
    outcome = CliRunner().invoke(
        app, ["replay", str(events), "--report", str(report), "--horizon-days", "14"]
    )
    assert outcome.exit_code == 0, outcome.output
    body = orjson.loads(report.read_bytes())["backtest"]
    assert body["outcome"] == "inactive" and body["horizon_days"] == 14
    assert body["as_of"], "weekly snapshots after warm-up with 14 days left must give as-of points"
    assert set(body["scorers"]) >= {CHURNWATCH, "days_since_last", "bgnbd_p_dead", "bgnbd_expected"}
    assert " ".join(body["verdict"].split()) in " ".join(outcome.output.split())
    off = CliRunner().invoke(app, ["replay", str(events), "--report", str(report), "--no-baselines"])
    assert off.exit_code == 0, off.output
    assert "backtest" not in orjson.loads(report.read_bytes())


def test_large_files_are_compared_on_a_fixed_sample_of_accounts() -> None:
    result = run_replay(hand_made(), snapshot_ms=[AS_OF * DAY_MS], record_activity=True)
    cfg = BacktestConfig(horizon_days=14, as_of_days=(AS_OF,), max_accounts=2)
    first, again = backtest(result, cfg), backtest(result, cfg)
    assert first is not None and again is not None
    assert first.to_dict()["accounts_compared"] == 2
    assert set(first.nonchurners) | set(first.churn_day) == set(again.nonchurners) | set(again.churn_day)
    ranked = first.scorers["days_since_last"].per_as_of[0]
    assert ranked is None or ranked.n == 2
