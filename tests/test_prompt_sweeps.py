"""Prompt sweeps on the wall clock (``streams/live/prompt_sweeps.py``): what the engine marks as urgent, and
the sweep a prompt starts, evaluating only the accounts reached. No Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.vocabulary import Priority, SupportKind
from detectors.windows import DAY_MS, WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine import Engine, MemoryStore
from streams.engine.answers import AnswerArrival
from streams.engine.fold import Arrival
from streams.events import SupportEvent, UsageEvent, validate
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource
from streams.live.prompt_sweeps import MAX_ACCOUNTS, PromptSweeps

START = datetime(2026, 2, 2, tzinfo=UTC)
ACCOUNTS = 30
DAYS = 40


@pytest.fixture()
def swept() -> tuple[Engine, int]:
    """An engine on the wall clock after a simulated history and the next day's first sweep; that sweep's
    time."""
    events = Simulation(SimulationConfig(seed=4, accounts=ACCOUNTS, days=DAYS, start=START)).events()
    arrivals = sorted(
        (Arrival(validate(event), 0, offset) for offset, event in enumerate(events)),
        key=lambda arrival: arrival.event.ts_ms,
    )
    monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    engine = Engine(monitor, MemoryStore(), incremental=True, event_clock=False, wall_clock=lambda: 1)
    engine.fold(arrivals)
    now_ms = (arrivals[-1].event.ts_ms // DAY_MS + 1) * DAY_MS + 3_600_000
    engine.sweep(now_ms)
    assert engine.last_sweep is not None and not engine.last_sweep.changed_only
    assert not engine.urgent and not engine.touched
    return engine, now_ms


def account(engine: Engine, n: int = 0) -> str:
    return sorted(key.decode() for key in engine.store.owned())[n]


def usage(account_id: str, ts_ms: int) -> Arrival:
    return Arrival(UsageEvent(account_id, ts_ms, event="login", user_id="u1"), 0, 10**9 + ts_ms % 1000)


def ticket(account_id: str, ts_ms: int) -> Arrival:
    event = SupportEvent(account_id, ts_ms, kind=SupportKind.TICKET_OPENED, priority=Priority.URGENT)
    return Arrival(event, 0, 10**9 + ts_ms % 997)


def test_todays_usage_is_not_urgent_a_ticket_is(swept: tuple[Engine, int]) -> None:
    engine, now_ms = swept
    prompt = PromptSweeps(1.0, clock=lambda: 0.0)
    engine.fold([usage(account(engine), now_ms - 1_000)])
    assert not engine.urgent and not engine.touched
    assert not prompt.due(engine)
    engine.fold([ticket(account(engine, 1), now_ms - 500)])
    assert engine.urgent and engine.touched == {account(engine, 1)}
    assert prompt.due(engine)


def test_a_prompted_sweep_evaluates_only_the_accounts_reached(swept: tuple[Engine, int]) -> None:
    engine, now_ms = swept
    engine.fold([ticket(account(engine, 2), now_ms + 1_000)])
    engine.sweep(now_ms + 2_000)
    timing = engine.last_sweep
    assert timing is not None and timing.changed_only and timing.accounts == 1
    assert not engine.urgent and not engine.touched


def test_late_usage_waits_for_the_timer(swept: tuple[Engine, int]) -> None:
    engine, now_ms = swept
    engine.fold([usage(account(engine, 3), now_ms - 2 * DAY_MS)])  # an earlier day: judged again, not urgent
    assert engine.touched == {account(engine, 3)} and not engine.urgent
    assert not PromptSweeps(1.0, clock=lambda: 0.0).due(engine)


def test_an_answer_is_urgent(swept: tuple[Engine, int]) -> None:
    engine, now_ms = swept
    feedback = Feedback(
        account_id=account(engine, 4),
        alert_id=f"{account(engine, 4)}:{now_ms - DAY_MS}:opened",
        label=FeedbackLabel.FALSE_ALARM,
        user="ana",
        source=FeedbackSource.SLACK,
        answered_ts_ms=now_ms,
    )
    engine.fold([AnswerArrival(feedback, 0, 1)])
    assert engine.urgent and account(engine, 4) in engine.touched


def test_a_backlog_waits_for_the_timer(swept: tuple[Engine, int]) -> None:
    engine, now_ms = swept
    engine.touched |= {f"late-{n}" for n in range(MAX_ACCOUNTS)}  # as a backlog's late usage would
    engine.fold([ticket(account(engine, 5), now_ms)])
    assert engine.urgent and len(engine.touched) == MAX_ACCOUNTS + 1
    assert not PromptSweeps(1.0, clock=lambda: 0.0).due(engine)


def test_a_failed_sweep_keeps_the_urgency(swept: tuple[Engine, int]) -> None:
    engine, now_ms = swept
    engine.fold([ticket(account(engine, 6), now_ms)])

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the sweep failed")

    engine.detection.sweep_steps = failing  # type: ignore[method-assign, assignment]
    with pytest.raises(RuntimeError):
        engine.sweep(now_ms + 1_000)
    assert engine.urgent and engine.touched == {account(engine, 6)}
