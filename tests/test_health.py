"""Readiness and liveness verdicts, the exit deadline and the second signal, without a broker."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import faust
import pytest
from prometheus_client import CollectorRegistry

from streams.live.health import Health, LoopHeartbeat
from streams.live.lifecycle import BoundedWorker, ExitDeadline
from streams.metrics import Metrics
from tests.kafka_harness import wait_until


@dataclass
class FakeReader:
    generation: int | None = 3
    last_read: float = 100.0
    last_turn: float = 100.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def health(
    reader: FakeReader, clock: FakeClock, *, rebalancing: bool = False, worked_at: list[float] | None = None
) -> Health:
    return Health(
        reader,
        rebalancing=lambda: rebalancing,
        heartbeat=LoopHeartbeat(clock),
        ready_read_within_s=10,
        liveness_timeout_s=60,
        working=(lambda: worked_at[-1]) if worked_at else (lambda: float("-inf")),
        clock=clock,
    )


def test_ready_while_the_broker_answers_fetches() -> None:
    clock = FakeClock()
    reader = FakeReader()
    clock.now = 109.0
    verdict = health(reader, clock).readiness()
    assert verdict.ok and verdict.reason is None and verdict.reader_read_age_s == 9.0


@pytest.mark.parametrize(
    ("generation", "rebalancing", "read_age", "reason"),
    [
        (3, False, 11.0, "not_reading"),  # no fetch answered lately: broker gone or reader stalled
        (None, False, 0.0, "starting"),
        (None, True, 0.0, "rebalancing"),
        (3, True, 50.0, "rebalancing"),  # a rebalance explains the silence better than the broker
    ],
)
def test_not_ready_names_the_reason(
    generation: int | None, rebalancing: bool, read_age: float, reason: str
) -> None:
    clock = FakeClock()
    reader = FakeReader(generation=generation, last_read=clock.now - read_age)
    verdict = health(reader, clock, rebalancing=rebalancing).readiness()
    assert not verdict.ok and verdict.reason == reason
    assert verdict.body("ready")["ready"] is False and verdict.body("ready")["reason"] == reason


def test_not_reading_is_still_live() -> None:
    """A broker that is gone: the reader keeps turning on empty fetches, so no restart is asked for."""
    clock = FakeClock()
    reader = FakeReader()
    checks = health(reader, clock)
    clock.now += 45
    reader.last_turn = clock.now - 0.3
    checks.heartbeat.last_beat = clock.now - 0.5
    assert checks.readiness().reason == "not_reading"
    assert checks.liveness().ok


def test_a_reader_loop_that_stopped_turning_is_not_live() -> None:
    clock = FakeClock()
    reader = FakeReader()
    checks = health(reader, clock)
    clock.now += 61
    checks.heartbeat.last_beat = clock.now - 0.5
    verdict = checks.liveness()
    assert not verdict.ok and verdict.reason == "reader" and verdict.reader_turn_age_s == 61


def test_a_long_sweep_whose_steps_progress_is_ready_and_live() -> None:
    """A sweep of many accounts: the reader fetches nothing and its loop waits for the batch for the sweep's
    length, while the sweep's steps progress. Once they stop progressing, that is a hang like any other."""
    clock = FakeClock()
    reader = FakeReader()
    worked_at = [clock.now]
    checks = health(reader, clock, worked_at=worked_at)
    clock.now += 75  # past the readiness bound (10 s) and the liveness timeout (60 s)
    checks.heartbeat.last_beat = clock.now - 0.5
    worked_at.append(clock.now - 0.05)
    assert checks.readiness().ok and checks.liveness().ok
    assert checks.readiness().reader_read_age_s == 75  # the reader's own figures, as they are
    clock.now += 61
    checks.heartbeat.last_beat = clock.now - 0.5
    assert checks.readiness().reason == "not_reading"
    assert checks.liveness().reason == "reader"


def test_a_blocked_event_loop_is_not_live() -> None:
    clock = FakeClock()
    reader = FakeReader()
    checks = health(reader, clock)
    clock.now += 62  # the heartbeat due a second after the last one is 61 s overdue
    reader.last_turn = clock.now
    verdict = checks.liveness()
    assert not verdict.ok and verdict.reason == "event_loop" and verdict.event_loop_lag_s == 61


def test_the_heartbeat_measures_how_late_the_loop_runs_it() -> None:
    heartbeat = LoopHeartbeat()

    async def beat_once() -> None:
        task = asyncio.ensure_future(heartbeat.run())
        first = heartbeat.last_beat
        while heartbeat.last_beat == first:
            await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(asyncio.wait_for(beat_once(), timeout=30))
    assert 0 <= heartbeat.lag < 30


def test_export_sets_the_gauges_with_one_reason_at_1() -> None:
    clock = FakeClock()
    reader = FakeReader(last_read=clock.now - 12)
    registry = CollectorRegistry()
    metrics = Metrics.build(registry)
    health(reader, clock).export(metrics)
    assert registry.get_sample_value("churnwatch_ready") == 0
    values = {
        reason: registry.get_sample_value("churnwatch_not_ready", {"reason": reason})
        for reason in ("rebalancing", "starting", "not_reading")
    }
    assert values == {"rebalancing": 0, "starting": 0, "not_reading": 1}
    assert registry.get_sample_value("churnwatch_reader_progress_age_seconds") == 12


# -- exit deadline and the second signal --------------------------------------------------------------------


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.lines: list[str] = []

    def exit(self, code: int) -> None:
        self.codes.append(code)

    def write(self, line: str) -> None:
        self.lines.append(line)


def test_an_armed_deadline_exits_with_code_1_naming_the_setting() -> None:
    exits = Exits()
    deadline = ExitDeadline(0.05, exit=exits.exit, write=exits.write)
    deadline.arm("the stop after SIGTERM")
    deadline.arm("armed twice")  # the first deadline stands
    wait_until(lambda: exits.codes, timeout=10, what="the deadline", interval=0.01)
    assert exits.codes == [1]
    assert len(exits.lines) == 1 and "the stop after SIGTERM" in exits.lines[0]
    assert "CHURNWATCH_SHUTDOWN_TIMEOUT_SECONDS" in exits.lines[0]


def test_an_unarmed_deadline_never_exits() -> None:
    exits = Exits()
    ExitDeadline(0.01, exit=exits.exit, write=exits.write)
    assert not exits.codes


def test_the_second_signal_exits_at_once_with_128_plus_its_number() -> None:
    exits = Exits()
    deadline_exits = Exits()
    loop = asyncio.new_event_loop()
    try:
        app = faust.App("lifecycle-test", broker="kafka://127.0.0.1:1", store="memory://")
        deadline = ExitDeadline(3600, exit=deadline_exits.exit, write=deadline_exits.write)
        worker = BoundedWorker(app, loop=loop, quiet=True, deadline=deadline, exit_now=exits.exit)
        assert worker._stop_on(signal.SIGTERM)  # the first: a graceful stop, under the deadline
        assert deadline.armed.is_set() and not exits.codes
        assert not worker._stop_on(signal.SIGINT)
        assert exits.codes == [128 + signal.SIGINT]
    finally:
        loop.close()


def test_a_crash_arms_the_deadline_so_a_hung_stop_still_exits() -> None:
    exits = Exits()
    loop = asyncio.new_event_loop()
    try:
        app = faust.App("lifecycle-crash-test", broker="kafka://127.0.0.1:1", store="memory://")
        deadline = ExitDeadline(0.05, exit=exits.exit, write=exits.write)
        worker = BoundedWorker(app, loop=loop, quiet=True, deadline=deadline, exit_now=exits.exit)
        worker._crash(RuntimeError("a reader task raised"))
        assert worker.crash_reason is not None  # mode's own crash handling still runs
        wait_until(lambda: exits.codes, timeout=10, what="the deadline", interval=0.01)
        assert exits.codes == [1] and "after a fatal error" in exits.lines[0]
    finally:
        loop.close()
