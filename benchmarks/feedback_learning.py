"""Do answers to alerts make detection better? A simulated base, the real engine, answers from the truth.

Usage::

    .venv/bin/python benchmarks/feedback_learning.py --accounts 3000 --days 200 --event-scale 0.03 \
        --vacation 0.25 --answers 200

The simulator (``streams/dev/simulator/``) writes a customer base in which a quarter of the accounts are
``vacation_dip``: healthy accounts whose usage drops to 20-40 % for one to two weeks. The drop detectors
fire on them systematically (one kind of healthy account, one kind of signal). Accounts are split in two
by a stable hash: the *answered* half and the *held-out* half.

The same events run twice through the engine (:class:`streams.engine.Engine`, what the worker and replay
drive): once without answers, once with an oracle that answers the first ``--answers`` opened alerts on
answered accounts the moment they are raised (after the sweep that raised them), from the simulator's
truth: *real* when the account cancels after the alert, else *false alarm*
(:mod:`streams.engine.answers`; weight ``--label-weight``). Then, from the day the last answer was given:

- **AUC on held-out accounts**: each weekly midnight, every swept held-out account's risk against whether
  it cancels within the next 30 days (no answer ever touched these accounts: only the global risk model
  learned from the answers can change their ranking);
- **false-alarm rate**: the share of opened alerts whose account does not cancel after it, on held-out
  and on answered accounts (there, per-account muting and damping act too).

Prints one JSON object. The seeds are fixed: the same arguments print the same numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detectors.alerts import Alert, AlertKind, Transition  # noqa: E402
from detectors.answers import AnswerPolicy  # noqa: E402
from detectors.monitor import AccountMonitor, DetectorConfig  # noqa: E402
from detectors.windows import DAY_MS, WindowConfig  # noqa: E402
from streams.dev.simulator import Simulation, SimulationConfig  # noqa: E402
from streams.engine import Arrival, Engine, MemoryStore, SweepOutcome  # noqa: E402
from streams.engine.answers import AnswerArrival  # noqa: E402
from streams.events import Event, validate  # noqa: E402
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource  # noqa: E402
from streams.offline.baselines import auc  # noqa: E402

HORIZON_MS = 30 * DAY_MS
CHUNK = 4_096


def held_out(account: str) -> bool:
    """The stable half of accounts no answer ever touches."""
    return zlib.crc32(account.encode()) % 2 == 1


@dataclass(slots=True)
class Oracle:
    """Answers the first ``budget`` opened alerts on answered accounts from the truth (cancel times)."""

    cancels: dict[str, int]
    budget: int
    given: list[Feedback] = field(default_factory=list)
    last_ms: int | None = None

    def answers(self, alerts: list[Alert]) -> Iterator[Feedback]:
        for alert in alerts:
            opened = alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED
            if not opened or held_out(alert.account_id) or len(self.given) >= self.budget:
                continue
            cancel = self.cancels.get(alert.account_id)
            real = cancel is not None and cancel >= alert.event_ts_ms
            answer = Feedback(
                account_id=alert.account_id,
                alert_id=alert.idempotency_key,
                label=FeedbackLabel.REAL if real else FeedbackLabel.FALSE_ALARM,
                user="oracle",
                source=FeedbackSource.API,
                answered_ts_ms=alert.event_ts_ms,
            )
            self.given.append(answer)
            self.last_ms = alert.event_ts_ms
            yield answer


@dataclass(slots=True)
class Run:
    """One pass over the events: alerts, and held-out accounts' risk at each weekly midnight."""

    alerts: list[Alert] = field(default_factory=list)
    risks: dict[int, dict[str, float]] = field(default_factory=dict)  # midnight ms -> account -> risk
    engine: Engine | None = None
    seconds: float = 0.0


def replay(events: list[Event], oracle: Oracle | None, policy: AnswerPolicy, first_day: int) -> Run:
    run = Run()
    monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    engine = Engine(monitor, MemoryStore(), answer_policy=policy, on_answered=run.alerts.extend)

    def swept(outcome: SweepOutcome) -> None:
        run.alerts.extend(outcome.alerts)
        if (outcome.now_ms // DAY_MS - first_day) % 7 == 0:
            run.risks[outcome.now_ms] = {
                a.account_id: a.risk for a in outcome.assessments if held_out(a.account_id)
            }
        if oracle is not None:
            for answer in oracle.answers(outcome.alerts):
                engine.answer(AnswerArrival(answer, 0, len(oracle.given)))

    engine.on_sweep = swept
    run.engine = engine
    started = time.perf_counter()
    for start in range(0, len(events), CHUNK):
        engine.fold(Arrival(e, 0, start + i) for i, e in enumerate(events[start : start + CHUNK]))
    run.seconds = time.perf_counter() - started
    return run


def ranking(run: Run, cancels: dict[str, int], from_ms: int, last_ms: int) -> dict[str, Any] | None:
    """AUC of held-out accounts' risk for cancelling within 30 days, pooled over weekly midnights."""
    scores: list[float] = []
    labels: list[bool] = []
    for midnight, risks in sorted(run.risks.items()):
        if not from_ms <= midnight <= last_ms - HORIZON_MS:
            continue
        for account, risk in risks.items():
            cancel = cancels.get(account)
            if cancel is not None and cancel <= midnight:
                continue  # already gone
            scores.append(risk)
            labels.append(cancel is not None and cancel <= midnight + HORIZON_MS)
    result = auc(scores, labels)
    if result is None:
        return None  # the answers took too long: no 30-day outcome left to rank (lengthen --days)
    return {"auc": result.auc, "se": result.se, "cases": result.n, "positives": result.positives}


def false_alarms(run: Run, cancels: dict[str, int], from_ms: int, *, held: bool) -> dict[str, Any]:
    opened = [
        a
        for a in run.alerts
        if a.transition is Transition.OPENED
        and a.kind is AlertKind.ACCOUNT_RISK
        and a.event_ts_ms >= from_ms
        and held_out(a.account_id) == held
    ]
    false = [a for a in opened if cancels.get(a.account_id, -1) < a.event_ts_ms]
    return {
        "opened": len(opened),
        "false_alarms": len(false),
        "rate": round(len(false) / len(opened), 4) if opened else None,
    }


def repeats(run: Run, answered: dict[str, int], cancels: dict[str, int]) -> dict[str, int]:
    """Alerts opened again on accounts answered *false alarm*, after the answer (and how many were false)."""
    again = [
        a
        for a in run.alerts
        if a.transition is Transition.OPENED
        and a.kind is AlertKind.ACCOUNT_RISK
        and a.event_ts_ms > answered.get(a.account_id, 1 << 62)
    ]
    false = [a for a in again if cancels.get(a.account_id, -1) < a.event_ts_ms]
    return {"accounts": len(answered), "opened_again": len(again), "false_alarms": len(false)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--event-scale", type=float, default=0.03)
    parser.add_argument("--vacation", type=float, default=0.25, help="share of vacation_dip accounts")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--label-weight", type=float, default=1.0)
    args = parser.parse_args()

    config = SimulationConfig(
        seed=args.seed,
        accounts=args.accounts,
        days=args.days,
        event_scale=args.event_scale,
        vacation_dip=args.vacation,
    )
    simulation = Simulation(config)
    events = [validate(e, min_ts_ms=None) for e in simulation.events()]
    truth = simulation.truth()
    cancels = {
        row["account_id"]: int(datetime.fromisoformat(row["churn_ts"]).timestamp() * 1000)
        for row in truth
        if row["churned"]
    }
    start_ms = int(config.start.timestamp() * 1000)  # billing preambles date back years: count from here
    first_day = start_ms // DAY_MS
    last_ms = events[-1].ts_ms
    policy = AnswerPolicy(label_weight=args.label_weight)
    oracle = Oracle(cancels, args.answers)
    after = replay(events, oracle, policy, first_day)
    before = replay(events, None, policy, first_day)
    assert oracle.last_ms is not None, "no alert was answered"
    from_ms = (oracle.last_ms // DAY_MS + 1) * DAY_MS
    labels = [a.label.value for a in oracle.given]
    false_answered = {
        a.account_id: a.answered_ts_ms for a in oracle.given if a.label is FeedbackLabel.FALSE_ALARM
    }
    assert after.engine is not None
    body = {
        "args": vars(args),
        "accounts": args.accounts,
        "archetypes": _count(truth),
        "answers": {
            "given": len(labels),
            "real": labels.count("real"),
            "false_alarm": labels.count("false-alarm"),
            "last_answer_day": (oracle.last_ms - start_ms) // DAY_MS,
            "engine": {
                "applied": after.engine.answering.counts.applied,
                "learned": after.engine.answering.counts.learned,
                "unknown": after.engine.answering.counts.unknown,
            },
        },
        "evaluated_from_day": (from_ms - start_ms) // DAY_MS,
        "auc_held_out": {
            "before": ranking(before, cancels, from_ms, last_ms),
            "after": ranking(after, cancels, from_ms, last_ms),
        },
        "false_alarm_rate_held_out": {
            "before": false_alarms(before, cancels, from_ms, held=True),
            "after": false_alarms(after, cancels, from_ms, held=True),
        },
        "false_alarm_rate_answered_accounts": {
            "before": false_alarms(before, cancels, from_ms, held=False),
            "after": false_alarms(after, cancels, from_ms, held=False),
        },
        "repeat_alerts_after_false_alarm": {
            "before": repeats(before, false_answered, cancels),
            "after": repeats(after, false_answered, cancels),
        },
        "seconds": {"before": round(before.seconds, 1), "after": round(after.seconds, 1)},
    }
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


def _count(truth: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in truth:
        counts[row["archetype"]] = counts.get(row["archetype"], 0) + 1
    return counts


if __name__ == "__main__":
    main()
