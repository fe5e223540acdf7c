"""Tests of the seeded SaaS customer-base simulator (``streams.dev.simulator``)."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.dev.simulator import ARCHETYPES, PLANS, Simulation, SimulationConfig, write_jsonl

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ACCOUNT_RE = re.compile(r"^acct-\d{6}$")
SUPPORT_KINDS = {"ticket_opened", "ticket_solved", "csat", "escalated"}
BILLING_KINDS = {
    "subscription_created",
    "plan_changed",
    "payment_failed",
    "payment_succeeded",
    "subscription_canceled",
}
PRIORITIES = {"low", "normal", "high", "urgent"}
# Days on which seasonality is not "a normal weekday" in the default-start horizon.
HOLIDAYS_2026 = {date(2026, 6, 19), date(2026, 7, 3), date(2026, 9, 7)}

CFG = SimulationConfig(seed=11, accounts=120, days=120)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return Simulation(CFG)


@pytest.fixture(scope="module")
def events(sim: Simulation) -> list[dict[str, Any]]:
    return list(sim.events())


@pytest.fixture(scope="module")
def truth(sim: Simulation) -> list[dict[str, Any]]:
    return sim.truth()


@pytest.fixture(scope="module")
def by_account(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        out[ev["account_id"]].append(ev)
    return out


def parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def check_event(ev: dict[str, Any]) -> None:
    """Assert ``ev`` has exactly the canonical shape of its type."""
    assert isinstance(ev["account_id"], str) and ACCOUNT_RE.match(ev["account_id"]), ev
    assert isinstance(ev["ts"], str) and TS_RE.match(ev["ts"]), ev
    assert parse_ts(ev["ts"]).utcoffset() == timedelta(0)
    kind = ev.get("kind")
    if ev["type"] == "usage":
        assert set(ev) == {"type", "account_id", "ts", "event", "user_id", "count"}, ev
        assert isinstance(ev["event"], str) and ev["event"]
        assert isinstance(ev["user_id"], str) and ev["user_id"].startswith(ev["account_id"] + "-u")
        assert type(ev["count"]) is int and ev["count"] >= 1
    elif ev["type"] == "support":
        assert kind in SUPPORT_KINDS, ev
        expected = {"type", "account_id", "ts", "kind"}
        if kind in ("ticket_opened", "escalated"):
            expected.add("priority")
            assert ev["priority"] in PRIORITIES
        if kind == "csat":
            expected.add("score")
            assert type(ev["score"]) is int and 1 <= ev["score"] <= 5
        assert set(ev) == expected, ev
    elif ev["type"] == "billing":
        assert kind in BILLING_KINDS, ev
        assert set(ev) == {"type", "account_id", "ts", "kind", "mrr", "plan"}, ev
        assert type(ev["mrr"]) is float and ev["mrr"] > 0
        assert ev["plan"] in PLANS
    else:
        raise AssertionError(f"unknown type: {ev}")
    assert orjson.loads(orjson.dumps(ev)) == ev


def weekday_usage_rate(evs: list[dict[str, Any]], lo: date, hi: date) -> float:
    """Usage events per normal weekday in ``[lo, hi)``."""
    days = [lo + timedelta(days=i) for i in range((hi - lo).days)]
    days = [d for d in days if d.weekday() < 5 and d not in HOLIDAYS_2026]
    wanted = {d.isoformat() for d in days}
    n = sum(1 for ev in evs if ev["type"] == "usage" and ev["ts"][:10] in wanted)
    return n / max(1, len(days))


def note_window(notes: str, label: str) -> tuple[date, date]:
    m = re.search(label + r" (\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", notes)
    assert m, notes
    return date.fromisoformat(m[1]), date.fromisoformat(m[2])


# ------------------------------------------------------------------------------------- determinism


def test_same_seed_same_events_and_truth() -> None:
    a, b = (
        Simulation(SimulationConfig(seed=5, accounts=60, days=30)),
        Simulation(SimulationConfig(seed=5, accounts=60, days=30)),
    )
    assert list(itertools.islice(a.events(), 5000)) == list(itertools.islice(b.events(), 5000))
    assert a.truth() == b.truth()


def test_events_can_be_iterated_again(sim: Simulation, events: list[dict[str, Any]]) -> None:
    assert list(itertools.islice(sim.events(), 3000)) == events[:3000]


def test_different_seed_differs() -> None:
    a = Simulation(SimulationConfig(seed=5, accounts=60, days=30))
    b = Simulation(SimulationConfig(seed=6, accounts=60, days=30))
    assert list(itertools.islice(a.events(), 2000)) != list(itertools.islice(b.events(), 2000))
    assert a.truth() != b.truth()


def test_yielded_dicts_are_not_shared(sim: Simulation) -> None:
    first = next(sim.events())
    first["mrr"] = -1.0  # a consumer mutating its copy must not change later runs
    assert next(sim.events())["mrr"] > 0


# ------------------------------------------------------------------------------------- shape and order


def test_events_sorted_by_ts(events: list[dict[str, Any]]) -> None:
    # Fixed-width RFC 3339 in UTC: string order is time order.
    assert all(a["ts"] <= b["ts"] for a, b in itertools.pairwise(events))
    assert parse_ts(events[0]["ts"]) <= parse_ts(events[-1]["ts"])


def test_every_event_is_canonical(events: list[dict[str, Any]]) -> None:
    for ev in events:
        check_event(ev)


def test_volume_and_mix(events: list[dict[str, Any]]) -> None:
    types = Counter(ev["type"] for ev in events)
    # Default-sized runs (200 accounts) land in 150k-400k events; this one has 120 accounts.
    assert 90_000 < len(events) < 240_000
    assert types["usage"] > 0.95 * len(events)
    assert types["support"] > 100 and types["billing"] > 300
    names = Counter(ev["event"] for ev in events if ev["type"] == "usage")
    assert 6 <= len(names) <= 10
    top, second = names.most_common(2)
    assert top[1] > 2 * second[1]  # skewed
    counts = Counter(ev["count"] for ev in events if ev["type"] == "usage")
    assert counts[1] > 0.75 * sum(counts.values())
    csat = Counter(ev["score"] for ev in events if ev.get("kind") == "csat")
    assert csat[4] + csat[5] > 0.5 * sum(csat.values())


def test_every_account_starts_with_subscription_created(
    by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]
) -> None:
    start = CFG.start
    assert set(by_account) == {row["account_id"] for row in truth}
    for row in truth:
        first = by_account[row["account_id"]][0]
        assert first["kind"] == "subscription_created"
        assert parse_ts(first["ts"]) <= start
        assert (first["plan"], first["mrr"]) == (row["plan"], row["mrr"])


def test_plans_and_seats_correlate(truth: list[dict[str, Any]]) -> None:
    seats = defaultdict(list)
    for row in truth:
        seats[row["plan"]].append(row["seats"])
        if row["plan"] == "enterprise":
            assert row["mrr"] >= 2500
        else:
            assert row["mrr"] == {"starter": 49.0, "pro": 199.0, "business": 799.0}[row["plan"]]
    means = [sum(seats[p]) / len(seats[p]) for p in PLANS if seats[p]]
    assert means == sorted(means)


def test_monthly_renewals(by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]) -> None:
    for row in truth:
        if row["archetype"] not in ("healthy", "sparse", "vacation_dip"):
            continue
        paid = [ev for ev in by_account[row["account_id"]] if ev.get("kind") == "payment_succeeded"]
        assert 3 <= len(paid) <= 5  # 120 days ~ 4 billing days (a transient failure retries later)
        assert len({ev["ts"][8:10] for ev in paid}) <= 2  # same billing day each month (rarely a retry)


# ------------------------------------------------------------------------------------- churn archetypes


def test_churners_cancel_at_churn_ts_and_go_quiet(
    by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]
) -> None:
    churners = [row for row in truth if row["churned"]]
    assert churners
    for row in truth:
        evs = by_account[row["account_id"]]
        cancels = [ev for ev in evs if ev.get("kind") == "subscription_canceled"]
        if not row["churned"]:
            assert not cancels and row["churn_ts"] is None and row["churn_reason"] is None
            continue
        assert row["archetype"] in ("slow_disengage", "silent", "involuntary", "support_storm")
        assert len(cancels) == 1 and cancels[0] is evs[-1], row
        assert evs[-1]["ts"] == row["churn_ts"]
        assert all(ev["ts"] < row["churn_ts"] for ev in evs[:-1])


def test_never_churning_archetypes(truth: list[dict[str, Any]]) -> None:
    for row in truth:
        if row["archetype"] in ("healthy", "vacation_dip", "sparse"):
            assert not row["churned"]


def test_vacation_dip_recovers(
    by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]
) -> None:
    rows = [row for row in truth if row["archetype"] == "vacation_dip"]
    assert len(rows) >= 5
    totals = {"before": 0.0, "dip": 0.0, "after": 0.0}
    for row in rows:
        lo, last = note_window(row["notes"], "vacation dip")
        hi = last + timedelta(days=1)
        evs = by_account[row["account_id"]]
        before = weekday_usage_rate(evs, lo - timedelta(days=14), lo)
        dip = weekday_usage_rate(evs, lo, hi)
        after = weekday_usage_rate(evs, hi, hi + timedelta(days=14))
        assert dip < 0.7 * before, row
        assert after > 1.5 * dip, row
        totals["before"] += before
        totals["dip"] += dip
        totals["after"] += after
    assert 0.15 < totals["dip"] / totals["before"] < 0.5
    assert totals["after"] > 0.8 * totals["before"]


def test_weekend_usage_lower_than_weekday(events: list[dict[str, Any]]) -> None:
    per_day = Counter(ev["ts"][:10] for ev in events if ev["type"] == "usage")
    weekday: list[int] = []
    weekend: list[int] = []
    for day, n in per_day.items():
        d = date.fromisoformat(day)
        if d not in HOLIDAYS_2026:
            (weekend if d.weekday() >= 5 else weekday).append(n)
    ratio = (sum(weekend) / len(weekend)) / (sum(weekday) / len(weekday))
    assert 0.15 < ratio < 0.4


def test_holidays_are_quiet(events: list[dict[str, Any]]) -> None:
    per_day = Counter(ev["ts"][:10] for ev in events if ev["type"] == "usage")
    normal = [
        n
        for day, n in per_day.items()
        if date.fromisoformat(day).weekday() < 5 and date.fromisoformat(day) not in HOLIDAYS_2026
    ]
    assert per_day["2026-07-03"] < 0.3 * sum(normal) / len(normal)


def test_involuntary_churners_fail_payments_first(
    by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]
) -> None:
    rows = [row for row in truth if row["archetype"] == "involuntary" and row["churned"]]
    assert rows
    for row in rows:
        assert row["churn_reason"] == "payment_failed"
        billing = [ev for ev in by_account[row["account_id"]] if ev["type"] == "billing"]
        # Dunning = the failures after the last successful payment (an earlier cycle may fail once too).
        last_ok = max((i for i, ev in enumerate(billing) if ev["kind"] == "payment_succeeded"), default=-1)
        failed = [ev for ev in billing[last_ok + 1 :] if ev["kind"] == "payment_failed"]
        assert 3 <= len(failed) <= 4
        span = parse_ts(billing[-1]["ts"]) - parse_ts(failed[0]["ts"])
        assert span <= timedelta(days=16)


def test_silent_accounts_stop_everything(
    by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]
) -> None:
    rows = [row for row in truth if row["archetype"] == "silent" and row["churned"]]
    assert rows
    for row in rows:
        m = re.search(r"silent from (\S+)", row["notes"])
        assert m, row
        evs = by_account[row["account_id"]]
        quiet = [ev for ev in evs if m[1] <= ev["ts"]]
        assert [ev["kind"] for ev in quiet] == ["subscription_canceled"]
        gap = parse_ts(row["churn_ts"]) - parse_ts(m[1])
        assert timedelta(days=13) < gap < timedelta(days=44)


def test_slow_disengagers_fade_before_cancel(
    by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]
) -> None:
    rows = [row for row in truth if row["archetype"] == "slow_disengage" and row["churned"]]
    assert rows
    early = late = 0.0
    for row in rows:
        churn = parse_ts(row["churn_ts"]).date()
        evs = by_account[row["account_id"]]
        early += weekday_usage_rate(evs, CFG.start.date(), CFG.start.date() + timedelta(days=21))
        late += weekday_usage_rate(evs, churn - timedelta(days=7), churn)
    assert late < 0.2 * early


def test_support_storms(by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]) -> None:
    rows = [row for row in truth if row["archetype"] == "support_storm"]
    assert rows
    for row in rows:
        support = [ev for ev in by_account[row["account_id"]] if ev["type"] == "support"]
        hot = [ev for ev in support if ev.get("priority") in ("high", "urgent")]
        assert len(hot) >= 3
        assert any(ev["kind"] == "escalated" for ev in support)
        if row["churned"]:
            assert row["churn_reason"] == "support_issues"


def test_sparse_accounts_use_the_product_on_few_days(
    by_account: dict[str, list[dict[str, Any]]], truth: list[dict[str, Any]]
) -> None:
    rows = [row for row in truth if row["archetype"] == "sparse"]
    assert rows
    for row in rows:
        days = {ev["ts"][:10] for ev in by_account[row["account_id"]] if ev["type"] == "usage"}
        limit = 18 if "weekly" in row["notes"] else 4  # 120 days ~ 17 weeks / 4 months
        assert 0 < len(days) <= limit, row


# ------------------------------------------------------------------------------------- config


def test_archetype_shares_match_config() -> None:
    cfg = SimulationConfig(seed=2, accounts=2000, days=30, silent=0.1, sparse=0.2)
    counts = Counter(row["archetype"] for row in Simulation(cfg).truth())
    expected = dict(zip(ARCHETYPES[1:], cfg.shares(), strict=True))
    expected["healthy"] = 1 - sum(cfg.shares())
    for name, share in expected.items():
        assert abs(counts[name] / cfg.accounts - share) < 0.01, (name, counts[name])


def test_event_scale_multiplies_usage() -> None:
    def usage(scale: float) -> int:
        sim = Simulation(SimulationConfig(seed=4, accounts=40, days=14, event_scale=scale))
        return sum(1 for ev in sim.events() if ev["type"] == "usage")

    assert 2.6 < usage(3.0) / usage(1.0) < 3.4


def test_start_is_truncated_to_utc_midnight() -> None:
    start = datetime(2026, 6, 1, 15, 30, tzinfo=UTC)
    sim = Simulation(SimulationConfig(seed=1, accounts=5, days=2, start=start))
    evs = [ev for ev in sim.events() if ev.get("kind") != "subscription_created"]
    assert evs[0]["ts"] >= "2026-06-01T00:00:00Z" and evs[-1]["ts"] < "2026-06-03T00:00:00Z"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"silent": 0.6, "sparse": 0.6},
        {"silent": -0.1},
        {"accounts": 0},
        {"days": 0},
        {"seed": -1},
        {"event_scale": -1.0},
        {"start": datetime(2026, 6, 1)},
    ],
)
def test_invalid_config_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**kwargs)


def test_generation_is_lazy() -> None:
    # A ten-year horizon must not be materialised before the first day is yielded.
    sim = Simulation(SimulationConfig(seed=1, accounts=50, days=3650))
    first = list(itertools.islice(sim.events(), 2000))
    assert first[-1]["ts"] < "2026-06-10"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    accounts=st.integers(1, 25),
    days=st.integers(1, 45),
    shares=st.lists(st.floats(0.0, 0.16), min_size=6, max_size=6),
)
def test_invariants_hold_for_any_small_config(
    seed: int, accounts: int, days: int, shares: list[float]
) -> None:
    slow, silent, involuntary, storm, vacation, sparse = shares
    cfg = SimulationConfig(
        seed=seed,
        accounts=accounts,
        days=days,
        slow_disengage=slow,
        silent=silent,
        involuntary=involuntary,
        support_storm=storm,
        vacation_dip=vacation,
        sparse=sparse,
    )
    sim = Simulation(cfg)
    evs = list(sim.events())
    end = (CFG.start + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert all(a["ts"] <= b["ts"] for a, b in itertools.pairwise(evs))
    assert evs[-1]["ts"] < end
    last: dict[str, dict[str, Any]] = {}
    for ev in evs:
        check_event(ev)
        assert last.get(ev["account_id"], {}).get("kind") != "subscription_canceled"
        last[ev["account_id"]] = ev
    for row in sim.truth():
        if row["churned"]:
            assert last[row["account_id"]]["kind"] == "subscription_canceled"
            assert last[row["account_id"]]["ts"] == row["churn_ts"]


# ------------------------------------------------------------------------------------- output


def test_write_jsonl(tmp_path: Path) -> None:
    sim = Simulation(SimulationConfig(seed=3, accounts=15, days=10))
    events_path, truth_path = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    n = write_jsonl(sim, events_path, truth_path)
    lines = events_path.read_bytes().splitlines()
    assert n == len(lines) > 0
    assert [orjson.loads(line) for line in lines] == list(sim.events())
    assert [orjson.loads(line) for line in truth_path.read_bytes().splitlines()] == sim.truth()
    assert write_jsonl(sim, tmp_path / "again.jsonl") == n
