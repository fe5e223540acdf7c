"""A lock-step replay on several processes (``replay --jobs N``) gives exactly one process's results: alerts,
held-back alerts, assessments, outcomes, snapshots, final states, the risk model and the population, and the
CLI's output files; on files with bad and duplicate lines, cancellations, a holiday and an outage incident."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from detectors.monitor import DetectorConfig
from streams.cli.main import app
from streams.dev.shapes import ShapedBase, ShapesConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.offline.replay import ReplayResult, replay_file
from streams.offline.replay_lockstep import ShardFailed, replay_lockstep
from streams.offline.replay_shard import Shard
from tests.test_replay_fast import RULES, SNAPSHOTS, dirty_file, outputs

OUTAGE_DAY = "2026-11-10"  # usage of two accounts in three is lost that day (an ingestion outage)


def full(result: ReplayResult, rejects: list[tuple[int, str, str, bytes]]) -> dict[str, Any]:
    """:func:`tests.test_replay_fast.outputs`, with the orders of the result's dictionaries and the
    worker-wide models."""
    found = outputs(result, rejects)
    assert result.monitor is not None
    found["population"] = result.monitor.population.to_state()
    found["orders"] = [
        list(result.windows),
        list(result.states),
        list(result.account_states),
        list(result.assessments),
        list(result.activity or {}),
        list(result.cancellations),
    ]
    found["stored"] = [state.to_bytes() for state in result.account_states.values()]
    found["after_as_of"] = result.after_as_of
    return found


def one_process(path: Path, **kwargs: Any) -> dict[str, Any]:
    rejects: list[tuple[int, str, str, bytes]] = []
    result = replay_file(
        path,
        rules=RULES,
        on_reject=lambda *r: rejects.append(r),
        record_activity=True,
        snapshot_ms=SNAPSHOTS,
        **kwargs,
    )
    return full(result, rejects)


def lock_step(path: Path, jobs: int, **kwargs: Any) -> dict[str, Any]:
    rejects: list[tuple[int, str, str, bytes]] = []
    result, _ = replay_lockstep(
        path,
        jobs=jobs,
        rules=RULES,
        on_reject=lambda *r: rejects.append(r),
        record_activity=True,
        snapshot_ms=SNAPSHOTS,
        **kwargs,
    )
    return full(result, rejects)


def assert_same(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert one.keys() == other.keys()
    for name, value in one.items():
        assert other[name] == value, name


def outage_file(path: Path) -> Path:
    """60 simulated accounts over Thanksgiving 2026; two in three lose their usage of one day."""
    config = SimulationConfig(seed=5, accounts=60, days=70, start=datetime(2026, 9, 28, tzinfo=UTC))
    lines = [
        orjson.dumps(event)
        for event in Simulation(config).events()
        if not (
            event["type"] == "usage"
            and event["ts"].startswith(OUTAGE_DAY)
            and int(event["account_id"][-2:]) % 3
        )
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def shapes_file(path: Path) -> Path:
    """The ``tuning`` mix of :mod:`streams.dev.shapes` (vacations, sparse and weekday-only accounts)."""
    base = ShapedBase(ShapesConfig(mix="tuning", seed=101, accounts=80, days=70))
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in base.events()))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lockstep")
    return {
        "dirty": dirty_file(root / "dirty.jsonl"),
        "outage": outage_file(root / "outage.jsonl"),
        "shapes": shapes_file(root / "shapes.jsonl"),
    }


@pytest.fixture(scope="module")
def reference(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {name: one_process(path) for name, path in files.items()}


def test_the_files_have_what_the_processes_must_agree_on(reference: dict[str, dict[str, Any]]) -> None:
    dirty, outage, shapes = reference["dirty"], reference["outage"], reference["shapes"]
    assert {"duplicate", "future_ts", "invalid_json"} <= {reason for _, reason, _, _ in dirty["rejects"]}
    assert dirty["alerts"] and dirty["cancellations"] and dirty["outcomes"] and dirty["snapshots"]
    kinds = {(alert.kind.value, alert.transition.value) for alert in outage["alerts"]}
    assert ("pipeline_incident", "opened") in kinds and outage["suppressed"]  # the outage guard acted
    assert outage["population"]["calendar"]["q"]  # Thanksgiving was recognised as a quiet day
    assert outage["cancellations"] and shapes["alerts"] and shapes["cancellations"]


@pytest.mark.parametrize("name", ["dirty", "outage", "shapes"])
def test_two_processes_give_one_process_results(
    name: str, files: dict[str, Path], reference: dict[str, dict[str, Any]]
) -> None:
    assert_same(reference[name], lock_step(files[name], 2))


def test_three_processes_and_an_as_of(files: dict[str, Path]) -> None:
    as_of_ms = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp() * 1000)
    one = one_process(files["outage"], as_of_ms=as_of_ms)
    assert one["after_as_of"] > 0
    assert_same(one, lock_step(files["outage"], 3, as_of_ms=as_of_ms))


def test_an_alert_budget_gives_one_process_results(
    files: dict[str, Path], reference: dict[str, dict[str, Any]]
) -> None:
    """The budget's counts travel in the census records: every shard opens at the same threshold."""
    config = DetectorConfig(alert_budget=0.01)
    one = one_process(files["shapes"], config=config)
    assert one["population"]["budget"] and one["alerts"] != reference["shapes"]["alerts"]  # it acted
    assert_same(one, lock_step(files["shapes"], 2, config=config))


def test_relative_trends_are_refused(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="relative_trends"):
        replay_lockstep(files["dirty"], jobs=2, rules=RULES, config=DetectorConfig(relative_trends=True))


def replay_cli(path: Path, out: Path, *extra: str) -> tuple[dict[str, bytes], dict[str, Any], str]:
    out.mkdir()
    args = ["replay", str(path), "--scores", str(out / "s.csv"), "--alerts", str(out / "a.jsonl")]
    args += ["--report", str(out / "r.json"), "--rejects", str(out / "x.tsv"), *extra]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    report = orjson.loads((out / "r.json").read_bytes())
    for timing in ("elapsed_s", "events_per_s", "sweep_s"):
        del report[timing]
    files = {name: (out / name).read_bytes() for name in ("s.csv", "a.jsonl", "x.tsv")}
    return files, report, done.output


def test_cli_jobs_writes_the_same_files(files: dict[str, Path], tmp_path: Path) -> None:
    one_files, one_report, _ = replay_cli(files["outage"], tmp_path / "one")
    two_files, two_report, output = replay_cli(files["outage"], tmp_path / "two", "--jobs", "2")
    assert one_files == two_files
    assert one_report == two_report
    assert one_report["alerts"] and one_report["backtest"]
    assert "lock-step" in output and "29,425 lines, clock 2026-12-06T23:17:57Z - finished" in output


def test_cli_jobs_with_feedback_replays_on_one_process(files: dict[str, Path], tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    answer = {"account_id": "acct-000001", "alert_id": "x", "label": "real", "user": "ana", "source": "api"}
    answers.write_bytes(orjson.dumps({**answer, "answered_ts_ms": 1_775_000_000_000}) + b"\n")
    done = CliRunner().invoke(app, ["replay", str(files["dirty"]), "--jobs", "2", "--feedback", str(answers)])
    assert done.exit_code == 0, done.output
    assert "--feedback" in done.output and "one process" in done.output


def test_a_failing_shard_stops_the_replay(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("observe broke")

    monkeypatch.setattr(Shard, "observe", broken)  # the shards are forked: they inherit it
    with pytest.raises(ShardFailed, match="observe broke"):
        replay_lockstep(files["dirty"], jobs=2, rules=RULES)
    assert not multiprocessing.active_children()


def test_a_shard_folds_to_the_next_cut_as_soon_as_it_has_observed(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a shard sends its assessments it folds up to the next cut at once (sent with the observe), not
    when the coordinator's review comes back with the next census; the results stay one process's (above)."""
    calls = tmp_path / "calls"

    def recording(name: str, method: Any) -> Any:
        def record(self: Shard, *args: Any) -> Any:
            with calls.open("a") as log:  # the shards are forked processes: a line each, with its pid
                log.write(f"{os.getpid()} {name}{'+fold' if name == 'census' and args[1] else ''}\n")
            return method(self, *args)

        return record

    for name in ("census", "observe", "fold"):
        monkeypatch.setattr(Shard, name, recording(name, getattr(Shard, name)))
    replay_lockstep(files["dirty"], jobs=2, rules=RULES)
    by_shard: dict[str, list[str]] = {}
    for line in calls.read_text().splitlines():
        pid, name = line.split()
        by_shard.setdefault(pid, []).append(name)
    assert len(by_shard) == 2
    for names in by_shard.values():
        assert names[:2] == ["census+fold", "fold"]  # the first cut: folded when the first census asks
        later = names[2:]
        assert "census+fold" not in later  # every later fold was sent ahead
        ahead = sum(1 for i in range(1, len(later)) if later[i - 1] == "observe" and later[i] == "fold")
        assert ahead >= 30, names  # the file's cuts: one per day of usage (75 days)


def test_a_fold_sent_ahead_that_fails_stops_the_replay(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold that breaks after its shard has answered the observe (nobody waits on it then) is reported at
    the coordinator's next call, not lost and not a hang."""
    fold = Shard.fold

    def breaks_ahead(self: Shard, *args: Any) -> Any:
        if self.observed is not None:  # between an observe and the settle: a fold sent ahead
            raise RuntimeError("fold ahead broke")
        return fold(self, *args)

    monkeypatch.setattr(Shard, "fold", breaks_ahead)
    with pytest.raises(ShardFailed, match="fold ahead broke"):
        replay_lockstep(files["dirty"], jobs=2, rules=RULES)
    assert not multiprocessing.active_children()


def test_cli_says_in_one_line_that_a_shard_failed(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("observe broke")

    monkeypatch.setattr(Shard, "observe", broken)
    done = CliRunner().invoke(app, ["replay", str(files["dirty"]), "--jobs", "2"])
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert errors == ["error: replay shard 0: RuntimeError: observe broke (--jobs 1 replays without shards)"]
    assert "Traceback" not in done.output


_INTERRUPT_IN_FORK: list[bool] = []  # armed by a test: the next fork is interrupted, as by a Ctrl-C


def _interrupt_in_fork() -> None:
    if _INTERRUPT_IN_FORK:
        _INTERRUPT_IN_FORK.clear()
        os.kill(os.getpid(), signal.SIGINT)


os.register_at_fork(before=_interrupt_in_fork)  # inert until armed (a hook cannot be unregistered)


def test_a_ctrl_c_that_lands_in_a_fork_stops_the_replay(files: dict[str, Path]) -> None:
    """CPython raises a signal that lands inside a fork in a hook it runs after it, and only prints it as
    ignored: the replay ran on to its end. Held back while the shards fork, it stops the replay."""
    raised: BaseException | None = None
    # Python's own handler, as a replay from the command line has it (an earlier test may have left another).
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    # Another thread (as the test run may have): the signal may reach it rather than the main thread.
    idle = threading.Event()
    bystander = threading.Thread(target=idle.wait, daemon=True)
    bystander.start()
    _INTERRUPT_IN_FORK.append(True)
    try:
        replay_lockstep(files["dirty"], jobs=2, rules=RULES)
    except BaseException as error:  # a KeyboardInterrupt is what must come out here
        raised = error
    finally:
        _INTERRUPT_IN_FORK.clear()
        idle.set()
        bystander.join()
        signal.signal(signal.SIGINT, handler)
    assert isinstance(raised, KeyboardInterrupt)
    assert not multiprocessing.active_children()
