"""The uplift estimate: its interval against published values, its cohort rules, and its coverage on simulated
bases where delivered alerts save a known share of churners (a 50 % holdout picked by the real hash)."""

from __future__ import annotations

import random
from dataclasses import replace

import orjson
import pytest

from detectors.alerts import Alert, AlertKind, Severity, Transition
from streams.live.holdout import Holdout
from streams.offline.uplift import DAY_MS, Uplift, alerted_outcomes

SAVED = 0.4  # the share of would-be churners a delivered alert saves in the simulations
HORIZON_DAYS = 30


def opened(account: str, day: float, *, transition: Transition = Transition.OPENED) -> Alert:
    ts = int(day * DAY_MS)
    return Alert(
        kind=AlertKind.ACCOUNT_RISK,
        account_id=account,
        episode_id=f"{account}:{ts}",
        transition=transition,
        severity=Severity.HIGH,
        risk=0.5,
        event_ts_ms=ts,
        detected_ts_ms=ts,
    )


# Newcombe (1998), Table II, method 10 (score intervals of each proportion, combined): p1 - p2, 95 % limits.
NEWCOMBE_TABLE_II = [
    ((56, 70), (48, 80), (0.0524, 0.3339)),
    ((9, 10), (3, 10), (0.1705, 0.8090)),
    ((6, 7), (2, 7), (0.0582, 0.8062)),
    ((0, 10), (0, 20), (-0.1611, 0.2775)),
    ((0, 10), (0, 10), (-0.2775, 0.2775)),
]


@pytest.mark.parametrize(("first", "second", "limits"), NEWCOMBE_TABLE_II)
def test_interval_matches_newcombes_published_values(
    first: tuple[int, int], second: tuple[int, int], limits: tuple[float, float]
) -> None:
    (x1, n1), (x2, n2) = first, second
    uplift = Uplift.from_counts(held_out=(n1, x1), delivered=(n2, x2))
    assert uplift.uplift == pytest.approx(x1 / n1 - x2 / n2)
    assert uplift.uplift_ci == pytest.approx(limits, abs=6e-5)


def test_one_line_rendering_and_a_json_body() -> None:
    uplift = Uplift.from_counts(delivered=(412, 74), held_out=(405, 126), pending=17)
    line = uplift.render()
    assert line.startswith(
        "alerts delivered → 18 % churned (n 412); held out → 31 % (n 405); uplift 13 pts ± "
    )
    body = orjson.loads(orjson.dumps(uplift.to_dict()))
    assert body["summary"] == line and body["pending"] == 17
    assert body["held_out"] == {"accounts": 405, "churned": 126, "rate": 126 / 405}
    assert body["uplift_ci"][0] < body["uplift"] < body["uplift_ci"][1]
    # No held-out churner: no share saved to speak of; an empty group: no estimate at all.
    assert Uplift.from_counts(delivered=(10, 0), held_out=(10, 0)).saved_share is None
    with pytest.raises(ValueError, match="both groups"):
        Uplift.from_counts(delivered=(0, 0), held_out=(10, 3))


def test_cohort_is_each_accounts_first_opening_once_its_horizon_has_passed() -> None:
    holdout = Holdout(0.5, "cohort")
    stamped = holdout.stamp(opened("stamped", 1))
    flipped = replace(stamped, extra={"holdout": {**stamped.extra["holdout"], "held_out": True}})
    alerts = [
        opened("early", 10),
        opened("early", 2),  # its first opening decides
        opened("escalated", 3, transition=Transition.ESCALATED),  # not an opening: not in the cohort
        opened("late", 80),  # the horizon after it has not passed by day 100
        opened("gone", 20),  # cancelled before it was alerted
        flipped,  # the stamp (what happened) wins over today's hash
        replace(opened("incident", 4), kind=AlertKind.PIPELINE_INCIDENT),
    ]
    cancellations = {"early": 31 * DAY_MS, "gone": 19 * DAY_MS, "late": 85 * DAY_MS, "stamped": 40 * DAY_MS}
    cohort = alerted_outcomes(
        alerts, cancellations, horizon_days=HORIZON_DAYS, as_of_ms=100 * DAY_MS, holdout=holdout
    )
    got = {o.account_id: (o.alerted_ts_ms // DAY_MS, o.held_out, o.churned) for o in cohort.outcomes}
    assert got == {"early": (2, holdout.member("early"), True), "stamped": (1, True, False)}
    assert cohort.pending == 1  # "late", even though it has churned already: settling it early biases
    unstamped = alerted_outcomes(alerts, cancellations, horizon_days=HORIZON_DAYS, as_of_ms=100 * DAY_MS)
    assert [o.account_id for o in unstamped.outcomes] == ["stamped"] and unstamped.unstamped == 3


def simulated_base(seed: int, accounts: int) -> tuple[list[Alert], dict[str, int], float]:
    """Alerted accounts of mixed risk; a delivered alert saves each would-be churner with probability SAVED.

    Returns the stamped alerts, the cancellations and the true uplift (SAVED x the expected churn rate).
    """
    rng = random.Random(seed)
    holdout = Holdout(0.5, f"simulation-{seed}")
    risks = {"high": (0.3, 0.5), "low": (0.7, 0.1)}  # segment: (share of accounts, churn within the horizon)
    alerts, cancellations = [], {}
    for i in range(accounts):
        account = f"acct-{seed}-{i}"
        alert = holdout.stamp(opened(account, rng.uniform(0, 60)))
        churn = risks["high"][1] if rng.random() < risks["high"][0] else risks["low"][1]
        would_churn = rng.random() < churn
        saved = would_churn and not holdout.member(account) and rng.random() < SAVED
        if would_churn and not saved:
            cancellations[account] = alert.event_ts_ms + int(rng.uniform(0.5, HORIZON_DAYS) * DAY_MS)
        alerts.append(alert)
    expected_churn = sum(share * rate for share, rate in risks.values())
    return alerts, cancellations, SAVED * expected_churn


def test_holdout_of_half_recovers_the_share_saved_within_its_interval_across_seeds() -> None:
    seeds = range(200)
    covered_share = covered_uplift = 0
    estimates: list[Uplift] = []
    for seed in seeds:
        alerts, cancellations, true_uplift = simulated_base(seed, accounts=1_000)
        cohort = alerted_outcomes(alerts, cancellations, horizon_days=HORIZON_DAYS, as_of_ms=100 * DAY_MS)
        uplift = Uplift.estimate(cohort)
        assert uplift is not None and cohort.pending == 0 and len(cohort.outcomes) == 1_000
        assert 400 < uplift.held_out.accounts < 600  # the hash picks about half
        assert uplift.saved_share_ci is not None
        low, high = uplift.saved_share_ci
        covered_share += low <= SAVED <= high
        covered_uplift += uplift.uplift_ci[0] <= true_uplift <= uplift.uplift_ci[1]
        estimates.append(uplift)
    # 95 % intervals: coverage near 95 % over 200 independent bases (a binomial spread of about ±1.5 %).
    # Too narrow (e.g. a Wald interval on few churners) or too wide (a useless interval) both fail here.
    assert 0.91 <= covered_share / len(seeds) <= 0.985, covered_share
    assert 0.91 <= covered_uplift / len(seeds) <= 0.985, covered_uplift
    mean_share = sum(u.saved_share or 0 for u in estimates) / len(estimates)
    assert mean_share == pytest.approx(SAVED, abs=0.03)
    half_widths = sorted(
        (u.saved_share_ci[1] - u.saved_share_ci[0]) / 2 for u in estimates if u.saved_share_ci
    )
    assert 0.08 < half_widths[len(half_widths) // 2] < 0.25  # informative at 1 000 alerted accounts
