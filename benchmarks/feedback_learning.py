"""Do answers to alerts make detection better? A simulated base, the real engine, answers from the truth.

Usage::

    .venv/bin/python benchmarks/feedback_learning.py --accounts 2000 --days 180 --event-scale 0.03 \
        --vacation 0.25 --vacation-plan pro --answers 200

The simulator (``streams/dev/simulator/``) writes a customer base in which a quarter of the accounts are
``vacation_dip``: healthy accounts whose usage drops to 20-40 % for one to two weeks, all on one plan
(``--vacation-plan``: one kind of customer, as schools are). Silence, recency and the population
percentiles fire on them (one kind of healthy account, a few signals). :mod:`streams.dev.answer_study` runs
the same events through the engine without answers and with an oracle answering the first ``--answers``
opened alerts on the answered half of the accounts, twice: with what answers teach about a plan
(:mod:`detectors.answer_segments`, the default) and without it (``segment_prior_answers=0``: the answered
accounts' own muting and damping, and the labels the global risk model learns, only). It measures, from the
day after the last answer, the AUC on held-out accounts (with a paired bootstrap interval of its change)
and the false-alarm rate of opened alerts on both halves.

Prints one JSON object. The seeds are fixed: the same arguments print the same numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detectors.answers import AnswerPolicy  # noqa: E402
from detectors.windows import DAY_MS  # noqa: E402
from streams.dev.answer_study import Base, Comparison, compare, repeats  # noqa: E402
from streams.dev.simulator import SimulationConfig  # noqa: E402
from streams.feedback import FeedbackLabel  # noqa: E402


def measured(comparison: Comparison) -> dict[str, Any]:
    base, oracle, after, before = comparison.base, comparison.oracle, comparison.after, comparison.before
    labels = [a.label.value for a in oracle.given]
    false_answered = {
        a.account_id: a.answered_ts_ms for a in oracle.given if a.label is FeedbackLabel.FALSE_ALARM
    }
    assert after.engine is not None and oracle.last_ms is not None
    counts = after.engine.answering.counts
    policy = after.engine.detection.answer_policy
    return {
        "answers": {
            "given": len(labels),
            "real": labels.count("real"),
            "false_alarm": labels.count("false-alarm"),
            "last_answer_day": (oracle.last_ms - base.start_ms) // DAY_MS,
            "engine": {"applied": counts.applied, "learned": counts.learned, "unknown": counts.unknown},
        },
        "evaluated_from_day": (comparison.from_ms - base.start_ms) // DAY_MS,
        "auc_held_out": {
            "before": comparison.auc(before),
            "after": comparison.auc(after),
            "paired_difference": comparison.difference(),
        },
        "false_alarm_rate_held_out": {
            "before": comparison.false_alarms(before, held=True),
            "after": comparison.false_alarms(after, held=True),
        },
        "false_alarm_rate_answered_accounts": {
            "before": comparison.false_alarms(before, held=False),
            "after": comparison.false_alarms(after, held=False),
        },
        "repeat_alerts_after_false_alarm": {
            "before": repeats(before, false_answered, base.cancels),
            "after": repeats(after, false_answered, base.cancels),
        },
        "plan_weights_at_end": after.engine.detection.segments.summary(comparison.last_ms, policy),
        "seconds": {"before": round(before.seconds, 1), "after": round(after.seconds, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--event-scale", type=float, default=0.03)
    parser.add_argument("--vacation", type=float, default=0.25, help="share of vacation_dip accounts")
    parser.add_argument("--vacation-plan", default="pro", help="their plan ('' : drawn like everyone's)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--label-weight", type=float, default=1.0)
    parser.add_argument("--segment-prior", type=float, default=AnswerPolicy().segment_prior_answers)
    args = parser.parse_args()

    config = SimulationConfig(
        seed=args.seed,
        accounts=args.accounts,
        days=args.days,
        event_scale=args.event_scale,
        vacation_dip=args.vacation,
        vacation_plan=args.vacation_plan or None,
    )
    base = Base.simulate(config)
    with_plans = compare(
        base,
        args.answers,
        AnswerPolicy(label_weight=args.label_weight, segment_prior_answers=args.segment_prior),
    )
    accounts_only = compare(
        base,
        args.answers,
        AnswerPolicy(label_weight=args.label_weight, segment_prior_answers=0.0),
        before=with_plans.before,
    )
    archetypes: dict[str, int] = {}
    for row in base.truth:
        archetypes[row["archetype"]] = archetypes.get(row["archetype"], 0) + 1
    body = {
        "args": vars(args),
        "archetypes": archetypes,
        "with_plan_lessons": measured(with_plans),
        "accounts_only": measured(accounts_only),
    }
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
