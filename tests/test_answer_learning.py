"""Answering alerts improves the ranking of accounts nobody answered (issue 18), without Kafka.

A simulated base where a quarter of the accounts are healthy vacation dippers on one plan: silence,
recency and the population percentiles fire on them. An oracle answers the first alerts on one half of the
accounts from the simulator's truth; the other half is never answered. The figures of a larger base are
measured by ``benchmarks/feedback_learning.py`` (docs/feedback.md); this test requires the direction, on a
base small enough for the suite, with a paired bootstrap interval rather than a single difference.

The study runs without the spell hold (``DetectorConfig.spell_hold``, eighth pass of issue 14): the hold
keeps most alerts on the vacation dippers from opening at all (the base learns that their dips end), so
the budget of answers was only spent on day 129 of 130 (day 185 of a 190-day base), leaving no outcome to
rank; what answers teach is measured on the alerts they were built to answer. What the hold alone does on
the same base is the last test's.

It also runs without the batch refits of the risk model (``DetectorConfig.refit_every``, on by default since
issue 14's eleventh pass): refitted, the same base opens 13 alerts after the answers' period instead of the
dozens of false alarms on vacation dippers this study is about, too few to measure what answers teach.
"""

from __future__ import annotations

import functools

import pytest

from detectors.answers import AnswerPolicy
from detectors.monitor import DetectorConfig
from streams.dev.answer_study import Base, Comparison, compare, false_alarms, replay
from streams.dev.simulator import SimulationConfig

ACCOUNTS, DAYS, ANSWERS = 1_200, 130, 200
UNHELD = DetectorConfig(spell_hold=False, refit_every=0)  # see the module docstring
# Two replays of the base: minutes, not seconds (the timeout only bounds a hang on a busy machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@functools.cache
def base() -> Base:
    return Base.simulate(
        SimulationConfig(
            seed=11, accounts=ACCOUNTS, days=DAYS, event_scale=0.02, vacation_dip=0.3, vacation_plan="pro"
        )
    )


@functools.cache
def with_answers() -> Comparison:
    return compare(base(), ANSWERS, AnswerPolicy(), config=UNHELD)


def test_answers_raise_the_auc_of_held_out_accounts() -> None:
    comparison = with_answers()
    before, after = comparison.auc(comparison.before), comparison.auc(comparison.after)
    assert before is not None and after is not None, "the answers left no 30-day outcome to rank"
    assert before["cases"] == after["cases"] and before["positives"] >= 50
    change = comparison.difference(resamples=300)
    assert change is not None
    assert change["low"] > 0, f"AUC {before['auc']} -> {after['auc']}, paired 95 % interval {change}"


def test_answers_lower_the_false_alarm_rate_of_held_out_accounts() -> None:
    comparison = with_answers()
    before = comparison.false_alarms(comparison.before, held=True)
    after = comparison.false_alarms(comparison.after, held=True)
    assert before["opened"] >= 30
    assert after["rate"] < before["rate"] and after["false_alarms"] < before["false_alarms"], (before, after)
    assert after["real"] >= before["real"] * 0.8  # not bought by silencing the real alerts


def test_the_spell_hold_alone_opens_fewer_false_alarms_and_keeps_most_real_ones() -> None:
    """The engine with the spell hold (an option, off by default), no answers: on held-out accounts from
    the day after the answers' period, fewer alerts on accounts that did not cancel than without the hold.
    Measured when this test was written (the bounds were set after): false alarms 134 -> 79, real alerts
    29 -> 19; the hold costs real alerts too, so it does not replace answers."""
    comparison = with_answers()
    held = replay(base(), None, AnswerPolicy(), DetectorConfig(spell_hold=True, refit_every=0))
    before = comparison.false_alarms(comparison.before, held=True)
    after = false_alarms(held, base().cancels, comparison.from_ms, held=True)
    assert after["false_alarms"] < 0.75 * before["false_alarms"], (before, after)
    assert after["real"] >= before["real"] * 0.5, (before, after)
