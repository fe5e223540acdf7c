"""``churnwatch backfill`` without a broker: the fold, the partitions, what is (not) written, bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from detectors.monitor import AccountMonitor, DetectorConfig
from streams.engine import Engine, MemoryStore
from streams.engine.state import decode_detector
from streams.engine.store import ENGINE_KEY
from streams.live.ingest import AccountState
from streams.live.table_store import POSITIONS_KEY
from streams.offline.backfill import History, account_partition, fold_history, plan_rows
from streams.offline.replay import run_replay
from streams.offline.replay_input import InputError
from streams.settings import load_settings
from tests.kafka_harness import free_port, simulated_lines
from tests.test_cli_errors import env_without_config, refused, run


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return simulated_lines(accounts=25, days=40, seed=4)


@pytest.fixture(scope="module")
def history(lines: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> History:
    path = tmp_path_factory.mktemp("history") / "events.jsonl"
    # Shuffled and with a repeated line: backfill reads files as replay does (sorted, deduplicated).
    path.write_bytes(b"\n".join([*lines[1::2], *lines[::2], lines[5]]) + b"\n")
    return fold_history([path], load_settings(partitions=4))


def test_account_partition_is_the_producers_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for partitions in (1, 2, 3, 8, 100):
        every = list(range(partitions))
        for n in range(200):
            key = f"acct-{n:06d}".encode()
            assert account_partition(key, partitions) == partitioner(key, every, every)


def test_the_rows_are_replays_final_states(lines: list[bytes], history: History) -> None:
    offline = run_replay(lines)
    assert set(history.rows) == {account.encode() for account in offline.windows}
    assert history.input_stats.duplicates == 1
    for account, window in offline.windows.items():
        state = AccountState.from_bytes(history.rows[account.encode()], offline.window_config)
        assert state.window.to_state() == window.to_state()
        assert state.detector is not None
        assert decode_detector(state.detector) == offline.states[account].to_state()
        assert state.applied_offsets == [-1, -1, -1]  # no topic offset: live records all fold on top
        assert state.partition == account_partition(account.encode(), 4)
    assert history.history_alerts == len(offline.alerts)
    assert history.open_episodes == sum(s.episode is not None for s in offline.states.values())
    assert history.risk_model.to_state() == offline.monitor.risk_model.to_state()  # type: ignore[union-attr]


def test_only_missing_rows_are_written(history: History) -> None:
    first = plan_rows(history, {}, 4)
    accounts = [row for row in first.rows if not row.key.startswith(b"\x00")]
    assert first.written_accounts == len(accounts) == len(history.rows)
    assert all(row.partition == AccountState.partition_of(row.value) for row in accounts)
    stored = {row.key: row.value for row in first.rows}
    assert plan_rows(history, stored, 4).rows == []  # twice: nothing to write

    # An account the worker holds other state for is kept; a missing one is written.
    changed, missing = sorted(history.rows)[:2]
    stored[changed] = b"\x00\x01the worker's own state"
    del stored[missing]
    again = plan_rows(history, stored, 4)
    assert [row.key for row in again.rows] == [missing]
    assert again.kept_accounts == [changed.decode()]
    assert again.unchanged_accounts == len(history.rows) - 2


def test_the_engine_state_is_the_historys_and_never_replaces_a_workers(history: History) -> None:
    saved = orjson.loads(history.engine_state)
    assert saved["model"] == history.risk_model.to_state() and history.risk_model.n_positives > 0
    day = (history.clock_ms or 0) // 86_400_000
    assert saved["clock"] == {"day": day, "partitions": {"0": day, "1": day, "2": day, "3": day}}
    # A worker restores it as its own: the history's model, population and clock.
    engine = Engine(AccountMonitor(DetectorConfig(), load_settings().windows.window_config()), MemoryStore())
    engine.store.put_engine_state(history.engine_state)
    engine.restore([1])
    assert engine.clock.day == day and engine.clock.partition_days == {1: day}
    assert engine.detection.risk_model.to_state() == history.risk_model.to_state()
    assert engine.monitor.population.census_day == saved["population"]["day"] is not None

    fresh = plan_rows(history, {}, 3)
    assert [row.key for row in fresh.rows if row.key.startswith(b"\x00")] == [
        ENGINE_KEY % p for p in range(3)
    ]
    stored = {ENGINE_KEY % 0: history.engine_state, ENGINE_KEY % 1: b'{"v": 1, "model": null}'}
    plan = plan_rows(history, stored, 3)
    assert [row.key for row in plan.rows if row.key.startswith(b"\x00")] == [ENGINE_KEY % 2]
    assert (plan.engine_partitions, plan.kept_engine_partitions) == (1, 1)


def test_live_from_positions_only_where_none_are_stored(history: History) -> None:
    ends = {0: {"usage": 10, "billing": 2}, 1: {"usage": 7, "billing": 0}}
    stored = {POSITIONS_KEY % 1: orjson.dumps({"usage": 3})}
    plan = plan_rows(history, stored, 2, live_from=ends)
    positions = [row for row in plan.rows if row.key.startswith(POSITIONS_KEY[:-2])]
    assert [(row.partition, row.key, orjson.loads(row.value)) for row in positions] == [
        (0, POSITIONS_KEY % 0, {"usage": 10, "billing": 2})
    ]


def test_a_file_without_events_is_an_input_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"type": "usage"}\n\nnot json\n')
    with pytest.raises(InputError, match="held no valid event"):
        fold_history([junk], load_settings())


def test_cli_refuses_missing_files_and_an_unreachable_kafka(tmp_path: Path) -> None:
    refused(run("backfill", str(tmp_path / "nope.jsonl")), "nope.jsonl", "no such file")
    refused(run("backfill", str(tmp_path)), "is a directory")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(simulated_lines(accounts=2, days=3, seed=1)))
    closed = env_without_config(CHURNWATCH_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    refused(run("backfill", str(events), env=closed), "cannot reach Kafka")
