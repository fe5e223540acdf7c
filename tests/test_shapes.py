"""The shapes generator: valid, sorted, deterministic events whose behaviour matches the ground truth."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

import numpy as np
import pytest

from detectors.windows import DAY_MS
from streams.dev.shapes import HELDOUT, TUNING, Shape, ShapedBase, ShapesConfig
from streams.events import BillingEvent, UsageEvent, validate

START = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 120


@dataclass
class Parsed:
    base: ShapedBase
    events: list[dict]
    usage: dict[str, np.ndarray] = field(default_factory=dict)  # account -> usage per day index
    billing: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    truth: dict[str, dict] = field(default_factory=dict)


@cache
def generated(mix: str, seed: int, holiday: bool = True) -> Parsed:
    config = ShapesConfig(mix=mix, seed=seed, accounts=300, days=DAYS, start=START, holiday=holiday)
    base = ShapedBase(config)
    parsed = Parsed(base, list(base.events()))
    parsed.truth = {row["account_id"]: row for row in base.truth()}
    parsed.usage = {a: np.zeros(DAYS) for a in parsed.truth}
    day0 = int(START.timestamp() * 1000) // DAY_MS
    for body in parsed.events:
        event = validate(body)
        day = event.ts_ms // DAY_MS - day0
        if isinstance(event, UsageEvent):
            parsed.usage[event.account_id][day] += event.count
        elif isinstance(event, BillingEvent):
            parsed.billing[event.account_id].append((day, event.kind))
    return parsed


def of_shape(parsed: Parsed, shape: Shape) -> list[str]:
    return [a for a, row in parsed.truth.items() if row["shape"] == shape.value]


@pytest.mark.parametrize(("mix", "seed"), [("tuning", 100), ("heldout", 200)])
def test_events_are_valid_sorted_and_deterministic(mix: str, seed: int) -> None:
    parsed = generated(mix, seed)
    assert len(parsed.events) > 10_000
    stamps = [body["ts"] for body in parsed.events]
    assert stamps == sorted(stamps)
    again = ShapedBase(ShapesConfig(mix=mix, seed=seed, accounts=300, days=DAYS, start=START))
    assert list(again.events())[:500] == parsed.events[:500]
    assert again.truth() == parsed.base.truth()


def test_mixes_are_randomised_per_seed_and_tuning_lacks_the_held_out_shapes() -> None:
    a, b = generated("tuning", 100).base, generated("tuning", 101).base
    assert a.shares != b.shares
    for seed in (100, 101):
        parsed = generated("tuning", seed)
        shapes = {row["shape"] for row in parsed.truth.values()}
        assert Shape.ONE_TIME.value not in shapes and Shape.SEASONAL.value not in shapes
        assert parsed.base.holidays() == []
        assert all(row["join_day"] == 0 for row in parsed.truth.values())
    assert set(HELDOUT.shares) - set(TUNING.shares) == {Shape.ONE_TIME, Shape.SEASONAL}
    held = {row["shape"] for row in generated("heldout", 200).truth.values()}
    assert {Shape.ONE_TIME.value, Shape.SEASONAL.value} <= held


def test_churners_cancel_on_their_churn_day_and_stop_using() -> None:
    for mix, seed in (("tuning", 100), ("heldout", 200)):
        parsed = generated(mix, seed)
        churners = [a for a, row in parsed.truth.items() if row["churned"]]
        assert len(churners) >= 20
        for account, row in parsed.truth.items():
            cancels = [d for d, kind in parsed.billing[account] if kind == "subscription_canceled"]
            if row["churned"]:
                assert cancels == [row["churn_day"]], account
                assert parsed.usage[account][row["churn_day"] :].sum() == 0, account
            else:
                assert cancels == [], account


def test_silent_churners_are_silent_before_cancelling() -> None:
    parsed = generated("tuning", 100)
    silent = [a for a in of_shape(parsed, Shape.SILENT) if parsed.truth[a]["churned"]]
    assert silent
    for account in silent:
        churn = parsed.truth[account]["churn_day"]
        assert parsed.usage[account][max(0, churn - 14) : churn].sum() == 0
        assert parsed.usage[account][: max(0, churn - 35)].sum() > 0


def test_involuntary_churners_fail_payments_and_keep_using() -> None:
    parsed = generated("tuning", 100)
    involuntary = [a for a in of_shape(parsed, Shape.INVOLUNTARY) if parsed.truth[a]["churned"]]
    assert involuntary
    for account in involuntary:
        kinds = parsed.billing[account]
        failures = [d for d, kind in kinds if kind == "payment_failed"]
        assert failures, account
        assert not [d for d, kind in kinds if kind == "payment_succeeded" and d > failures[0]]
        churn = parsed.truth[account]["churn_day"]
        assert parsed.usage[account][churn - 7 : churn].sum() > 0 or parsed.truth[account]["level"] < 1


def test_gradual_fades_decline_and_abrupt_drops_fall() -> None:
    parsed = generated("tuning", 100)
    for shape in (Shape.GRADUAL_FADE, Shape.ABRUPT_DROP):
        accounts = [a for a in of_shape(parsed, shape) if parsed.truth[a]["churned"]]
        assert accounts, shape
        last = sum(
            parsed.usage[a][parsed.truth[a]["churn_day"] - 7 : parsed.truth[a]["churn_day"]].sum()
            for a in accounts
        )
        first = sum(parsed.usage[a][:7].sum() for a in accounts)
        assert last < 0.5 * first, shape


def test_level_driven_churners_are_low_all_along() -> None:
    parsed = generated("tuning", 100)
    low = [parsed.truth[a]["level"] for a in of_shape(parsed, Shape.LOW_LEVEL)]
    steady = [parsed.truth[a]["level"] for a in of_shape(parsed, Shape.STEADY)]
    assert low and steady
    assert np.median(low) < 0.5 * np.median(steady)


def test_vacations_pause_usage_and_the_holiday_week_lowers_everyone() -> None:
    parsed = generated("heldout", 200)
    day0 = START.date()
    vacation = [a for a, row in parsed.truth.items() if row["vacation"]]
    assert vacation
    during = before = 0.0
    for account in vacation:
        first, end = (
            (datetime.fromisoformat(v).date() - day0).days for v in parsed.truth[account]["vacation"]
        )
        during += parsed.usage[account][first:end].sum()
        before += parsed.usage[account][max(0, first - (end - first)) : first].sum()
    assert during < 0.1 * before
    [(first_date, end_date)] = parsed.base.holidays()
    first, end = (first_date - day0).days, (end_date - day0).days
    assert end - first == 7
    total = np.stack(list(parsed.usage.values())).sum(axis=0)
    assert total[first:end].sum() < 0.4 * total[first - 14 : first - 7].sum()


def test_the_control_is_the_same_base_without_its_holiday_week() -> None:
    with_it, without = generated("heldout", 200), generated("heldout", 200, holiday=False)
    assert without.base.holidays() == [] and with_it.truth == without.truth
    [(first_date, end_date)] = with_it.base.holidays()
    first, end = (first_date - START.date()).days, (end_date - START.date()).days
    week = [slice(first - 14, first - 7), slice(first, end)]
    totals = [np.stack(list(p.usage.values())).sum(axis=0) for p in (with_it, without)]
    before, during = ([t[w].sum() for t in totals] for w in week)
    assert during[0] < 0.4 * during[1]  # the holiday week lowers usage only where it exists
    assert abs(before[0] - before[1]) < 0.05 * before[1]  # elsewhere the two bases use as much


def test_one_time_buyers_and_late_joiners() -> None:
    parsed = generated("heldout", 200)
    one_time = of_shape(parsed, Shape.ONE_TIME)
    assert one_time
    for account in one_time:
        assert 1 <= np.count_nonzero(parsed.usage[account]) <= 3
    late = [a for a, row in parsed.truth.items() if row["join_day"] > 0]
    assert late
    for account in late:
        assert parsed.usage[account][: parsed.truth[account]["join_day"]].sum() == 0
