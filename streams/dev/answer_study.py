"""Do answers to alerts make detection better? A simulated base, the real engine, answers from the truth.

Used by ``benchmarks/feedback_learning.py`` (the figures in docs/feedback.md) and by its test at a small
scale. Accounts are split in two by a stable hash: the *answered* half and the *held-out* half, which no
answer ever touches. The same events run through the engine (:class:`streams.engine.Engine`, what the worker
and replay drive) without answers and with an :class:`Oracle` that answers the first ``budget`` opened
alerts on answered accounts the moment they are raised (after the sweep that raised them), from the
simulator's truth: *real* when the account cancels after the alert, else *false alarm*. Then, from the day
after the last answer:

- **AUC on held-out accounts** (:func:`ranking`): each weekly midnight, every swept held-out account's risk
  against whether it cancels within the next 30 days; :func:`paired_difference` bootstraps the change over
  accounts (both runs on the same resample), since the runs share their cases;
- **false-alarm rate** (:func:`false_alarms`): the share of opened alerts whose account does not cancel
  after it, on held-out and on answered accounts.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from detectors.alerts import Alert, AlertKind, Transition
from detectors.answers import AnswerPolicy
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import DAY_MS, WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine import Arrival, Engine, MemoryStore, SweepOutcome
from streams.engine.answers import AnswerArrival
from streams.events import Event, validate
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource
from streams.offline.baselines import auc

HORIZON_MS = 30 * DAY_MS
CHUNK = 4_096


def held_out(account: str) -> bool:
    """The stable half of accounts no answer ever touches."""
    return zlib.crc32(account.encode()) % 2 == 1


@dataclass(slots=True)
class Base:
    """A simulated base: its events, the cancellation time of each account that cancels, its first day."""

    config: SimulationConfig
    events: list[Event]
    cancels: dict[str, int]
    truth: list[dict[str, Any]]

    @classmethod
    def simulate(cls, config: SimulationConfig) -> Base:
        simulation = Simulation(config)
        events = [validate(e, min_ts_ms=None) for e in simulation.events()]
        truth = simulation.truth()
        cancels = {
            row["account_id"]: int(datetime.fromisoformat(row["churn_ts"]).timestamp() * 1000)
            for row in truth
            if row["churned"]
        }
        return cls(config, events, cancels, truth)

    @property
    def start_ms(self) -> int:
        return int(self.config.start.timestamp() * 1000)  # billing preambles date back years: count from here


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


def replay(
    base: Base, oracle: Oracle | None, policy: AnswerPolicy, config: DetectorConfig | None = None
) -> Run:
    """The base's events through a fresh engine (``config``: the detectors', default when None), answered by
    ``oracle`` (None: no answers)."""
    run = Run()
    first_day = base.start_ms // DAY_MS
    monitor = AccountMonitor(config if config is not None else DetectorConfig(), WindowConfig())
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
    events = base.events
    for start in range(0, len(events), CHUNK):
        engine.fold(Arrival(e, 0, start + i) for i, e in enumerate(events[start : start + CHUNK]))
    run.seconds = time.perf_counter() - started
    return run


def _cases(
    run: Run, cancels: dict[str, int], from_ms: int, last_ms: int
) -> tuple[list[str], list[float], list[bool]]:
    accounts: list[str] = []
    scores: list[float] = []
    labels: list[bool] = []
    for midnight, risks in sorted(run.risks.items()):
        if not from_ms <= midnight <= last_ms - HORIZON_MS:
            continue
        for account, risk in sorted(risks.items()):
            cancel = cancels.get(account)
            if cancel is not None and cancel <= midnight:
                continue  # already gone
            accounts.append(account)
            scores.append(risk)
            labels.append(cancel is not None and cancel <= midnight + HORIZON_MS)
    return accounts, scores, labels


def ranking(run: Run, cancels: dict[str, int], from_ms: int, last_ms: int) -> dict[str, Any] | None:
    """AUC of held-out accounts' risk for cancelling within 30 days, pooled over weekly midnights."""
    _, scores, labels = _cases(run, cancels, from_ms, last_ms)
    result = auc(scores, labels)
    if result is None:
        return None  # the answers took too long: no 30-day outcome left to rank (lengthen the base)
    return {"auc": result.auc, "se": result.se, "cases": result.n, "positives": result.positives}


def paired_difference(
    before: Run, after: Run, cancels: dict[str, int], from_ms: int, last_ms: int, *, resamples: int = 400
) -> dict[str, float] | None:
    """AUC after - before on held-out accounts, with a 95 % percentile interval from a bootstrap over
    accounts (an account's weekly cases stay together; both runs are scored on the same resample)."""
    accounts, s0, labels = _cases(before, cancels, from_ms, last_ms)
    accounts1, s1, labels1 = _cases(after, cancels, from_ms, last_ms)
    if (accounts, labels) != (accounts1, labels1) or auc(s0, labels) is None:
        return None  # the runs swept different accounts: no pairing
    names = sorted(set(accounts))
    index = {name: i for i, name in enumerate(names)}
    owner = np.array([index[a] for a in accounts])
    y, before_s, after_s = np.array(labels), np.array(s0), np.array(s1)
    rng = np.random.default_rng(0)
    deltas: list[float] = []
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, len(names), len(names)), minlength=len(names))
        take = np.repeat(np.arange(len(y)), counts[owner])
        a0, a1 = auc(before_s[take], y[take]), auc(after_s[take], y[take])
        if a0 is not None and a1 is not None:
            deltas.append(a1.auc - a0.auc)
    r0, r1 = auc(before_s, y), auc(after_s, y)
    assert r0 is not None and r1 is not None
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {
        "difference": round(r1.auc - r0.auc, 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
    }


def false_alarms(run: Run, cancels: dict[str, int], from_ms: int, *, held: bool) -> dict[str, Any]:
    """Opened account alerts from ``from_ms`` on one half, and how many were false alarms by the truth."""
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
        "real": len(opened) - len(false),
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


@dataclass(slots=True)
class Comparison:
    """Before (no answers) and after (an oracle's answers) on one base, measured from ``from_ms``."""

    base: Base
    before: Run
    after: Run
    oracle: Oracle
    from_ms: int

    @property
    def last_ms(self) -> int:
        return self.base.events[-1].ts_ms

    def auc(self, run: Run) -> dict[str, Any] | None:
        return ranking(run, self.base.cancels, self.from_ms, self.last_ms)

    def false_alarms(self, run: Run, *, held: bool) -> dict[str, Any]:
        return false_alarms(run, self.base.cancels, self.from_ms, held=held)

    def difference(self, *, resamples: int = 400) -> dict[str, float] | None:
        return paired_difference(
            self.before, self.after, self.base.cancels, self.from_ms, self.last_ms, resamples=resamples
        )


def compare(
    base: Base,
    budget: int,
    policy: AnswerPolicy,
    before: Run | None = None,
    config: DetectorConfig | None = None,
) -> Comparison:
    """Run the base with ``budget`` oracle answers under ``policy`` (and without, unless given ``before``),
    both with the detectors' ``config`` (default when None)."""
    oracle = Oracle(base.cancels, budget)
    after = replay(base, oracle, policy, config)
    if oracle.last_ms is None:
        raise ValueError("no alert was answered")
    if before is None:
        before = replay(base, None, policy, config)
    from_ms = (oracle.last_ms // DAY_MS + 1) * DAY_MS
    return Comparison(base, before, after, oracle, from_ms)
