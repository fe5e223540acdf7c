"""The backtest's batch model: fitted on the outcomes known at the as-of midnight, never on later ones."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from rich.console import Console

from detectors.windows import DAY_MS
from streams.cli.backtest import print_backtest
from streams.offline.backtest import BATCH_LABEL, Backtest, BacktestConfig, OutcomeMode, backtest
from streams.offline.replay import run_replay

DAY0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) // 86_400  # a Monday
AS_OF, HORIZON = DAY0 + 56, 14  # the model is fitted on day 42's accounts and their cancellations by day 56


def base(cancel: dict[str, int]) -> list[bytes]:
    """16 low-usage accounts ``L0..L15`` (1 event a day) and 20 busy ones ``H0..H19`` (8 a day) for 100 days;
    ``cancel`` gives the day an account cancels (it stops using the product then)."""
    lines = []
    accounts = {f"L{i}": 1 for i in range(16)} | {f"H{i}": 8 for i in range(20)}
    for day in range(100):
        for account, count in accounts.items():
            ts = (DAY0 + day) * DAY_MS + 10 * 3_600_000
            if day < cancel.get(account, 100):
                lines.append(
                    orjson.dumps(
                        {"type": "usage", "account_id": account, "ts": ts, "event": "x", "count": count}
                    )
                )
            elif day == cancel[account]:
                body = {"type": "billing", "account_id": account, "ts": ts, "kind": "subscription_canceled"}
                lines.append(orjson.dumps(body))
    return lines


def run(cancel: dict[str, int]) -> Backtest:
    result = run_replay(base(cancel), snapshot_ms=[AS_OF * DAY_MS], record_activity=True)
    cfg = BacktestConfig(horizon_days=HORIZON, outcome=OutcomeMode.CANCEL, as_of_days=(AS_OF,))
    bt = backtest(result, cfg)
    assert bt is not None and bt.as_of_days == [AS_OF]
    return bt


def test_the_batch_model_ranks_by_what_earlier_outcomes_taught_it() -> None:
    """Eight low-usage accounts cancel between days 44 and 51: the model fitted on day 42 learns that low
    usage leaves. When eight more low-usage accounts cancel after day 56 it ranks them first (AUC 1); when
    eight busy ones do instead, it cannot know (AUC 0.3: behind every low-usage account, tied with the other
    busy ones). A model fitted on the outcomes after day 56 would have ranked the second base right."""
    earlier = {f"L{i}": 44 + i for i in range(8)}
    same = run(earlier | {f"L{8 + i}": 58 + i for i in range(8)})
    assert same.batch_model is not None and same.batch_model.auc == 1.0
    flipped = run(earlier | {f"H{i}": 58 + i for i in range(8)})
    assert flipped.batch_model is not None and flipped.batch_model.auc == 0.3
    body = flipped.to_dict()
    assert body["batch_model"]["auc"] == 0.3 and body["batch_model"]["auc_per_as_of"] == [0.3]
    pair = flipped.batch_pair()  # churnwatch over the same (single) as-of point, beside the batch model
    assert (
        pair is not None
        and pair[0] == 0.3
        and body["batch_model"]["churnwatch_same_points"] == round(pair[1], 4)
    )
    console = Console(record=True, width=200)
    print_backtest(console, body)
    assert f"A {BATCH_LABEL}, for the ranking only: AUC 0.300" in console.export_text()


def test_no_batch_model_without_enough_earlier_churners() -> None:
    """Four cancellations before the as-of midnight are too few to fit on (five of each outcome needed)."""
    bt = run({f"L{i}": 44 + i for i in range(4)} | {f"L{4 + i}": 58 + i for i in range(8)})
    assert bt.batch_model is None and bt.to_dict()["batch_model"]["auc"] is None
    assert bt.batch_pair() is None
    assert bt.scorers["days_since_last"].auc is not None  # the simple baselines are ranked as before
