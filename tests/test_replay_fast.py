"""Replay's fast paths give the results of the general one: the ordered fold loop against the engine's
general fold, and a read on several processes (``--jobs``) against one, on a simulated file with bad lines,
duplicates and lines out of order."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.windows import DAY_MS
from streams.dev.simulator import Simulation, SimulationConfig
from streams.events import decode
from streams.offline import replay
from streams.offline.replay import ReplayResult, replay_file
from streams.offline.replay_input import InputRules
from streams.offline.replay_parallel import line_shard, replay_file_parallel, shard_lines, shard_of

START = datetime(2026, 3, 1, tzinfo=UTC)
SNAPSHOTS = range(0, 2**45, 7 * DAY_MS)
# The worker's defaults (a day of clock skew, two days of lateness), spelled out.
RULES = InputRules(
    max_event_bytes=65_536, max_future_skew_ms=DAY_MS, dedup_horizon_ms=2 * DAY_MS, dedup_max_keys=250_000
)


def dirty_file(path: Path, *, seed: int = 11, accounts: int = 40, days: int = 75) -> Path:
    """A simulated event file with broken lines, blank lines, duplicates and neighbours swapped."""
    rng = random.Random(seed)
    events = Simulation(SimulationConfig(seed=seed, accounts=accounts, days=days, start=START)).events()
    lines: list[bytes] = []
    for event in events:
        line = orjson.dumps(event)
        roll = rng.random()
        if roll < 0.004:
            lines.append(b'{"type":"usage","account_id":')
        elif roll < 0.008:
            lines.append(line.replace(b'"ts":"', b'"ts":"x'))
        elif roll < 0.012:
            lines.append(line.replace(b'"type":"', b'"type":"un'))
        elif roll < 0.014:
            lines.append(b"")
        elif roll > 0.985:
            lines.append(line)  # a duplicate
        lines.append(line)
    for index in range(0, len(lines) - 5, 37):
        lines[index], lines[index + 3] = lines[index + 3], lines[index]
    lines.append(b'{"type":"usage","account_id":"acct-000001","ts":"2031-01-01T00:00:00Z","event":"x"}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def outputs(result: ReplayResult, rejects: list[tuple[int, str, str, bytes]]) -> dict[str, Any]:
    """Everything a replay hands its callers, in comparable form."""
    return {
        "counts": (result.lines, result.events, result.bad_lines, list(result.bad_reasons.items())),
        "late": result.late_events,
        "clock": (result.first_ts_ms, result.clock_ms, result.sweeps, result.observations),
        "alerts": result.alerts,
        "suppressed": result.suppressed,
        "outcomes": result.outcomes,
        "assessments": result.assessments,
        "states": {
            key: (state.window.to_state(), state.detector, state.applied_offsets, state.partition)
            for key, state in result.account_states.items()
        },
        "snapshots": result.snapshots,
        "activity": result.activity,
        "cancellations": result.cancellations,
        "risk_model": result.monitor.risk_model.to_state() if result.monitor is not None else None,
        "rejects": rejects,
    }


def run(path: Path, **kwargs: Any) -> dict[str, Any]:
    rejects: list[tuple[int, str, str, bytes]] = []
    result = replay_file(
        path,
        rules=RULES,
        on_reject=lambda *reject: rejects.append(reject),
        record_activity=True,
        snapshot_ms=SNAPSHOTS,
        **kwargs,
    )
    return outputs(result, rejects)


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dirty_file(tmp_path_factory.mktemp("replay") / "events.jsonl")


@pytest.fixture(scope="module")
def general(events_file: Path) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay, "ORDERED_FOLD", False)
        return run(events_file)


def test_the_file_has_what_the_paths_must_agree_on(general: dict[str, Any]) -> None:
    reasons = {reason for _, reason, _, _ in general["rejects"]}
    assert {"invalid_json", "invalid_ts", "unknown_type", "duplicate", "future_ts"} <= reasons
    assert general["alerts"] and general["outcomes"] and general["snapshots"] and general["cancellations"]


def test_ordered_fold_equals_the_general_fold(events_file: Path, general: dict[str, Any]) -> None:
    fast = run(events_file)
    for name, value in general.items():
        assert fast[name] == value, name


def test_ordered_fold_equals_the_general_fold_with_as_of(events_file: Path) -> None:
    as_of_ms = int(datetime(2026, 4, 20, tzinfo=UTC).timestamp() * 1000)
    fast = run(events_file, as_of_ms=as_of_ms)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay, "ORDERED_FOLD", False)
        slow = run(events_file, as_of_ms=as_of_ms)
    assert fast == slow


def test_parallel_read_equals_one_process(events_file: Path, general: dict[str, Any]) -> None:
    rejects: list[tuple[int, str, str, bytes]] = []
    result, stats = replay_file_parallel(
        events_file,
        jobs=3,
        rules=RULES,
        on_reject=lambda *reject: rejects.append(reject),
        record_activity=True,
        snapshot_ms=SNAPSHOTS,
    )
    parallel = outputs(result, rejects)
    for name, value in general.items():
        assert parallel[name] == value, name
    assert stats.accepted == general["counts"][1] + general["late"]


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"usage","account_id":"acme","ts":1,"event":"x"}',
        b'{"type":"usage","meta":{"account_id":"other"},"account_id":"acme","ts":1,"event":"x"}',
        b'{"type":"usage","account_id" : "acme","meta":{"account_id":"other"},"ts":1,"event":"x"}',
        b'{"type":"usage","account\\u005fid":"acme","meta":{"account_id":"other"},"ts":1,"event":"x"}',
        b'{"type":"usage","account_id":"ac\\"me","ts":1,"event":"x"}',
        b'{"type":"usage","account_id":"other","account_id":"acme","ts":1,"event":"x"}',
        b'{"type":"usage","note":"\\"account_id\\":\\"other\\"","account_id":"acme","ts":1,"event":"x"}',
    ],
)
def test_every_line_of_an_account_goes_to_its_shard(line: bytes) -> None:
    account = decode(line, max_bytes=1000, min_ts_ms=None).account_id
    for shards in (2, 3, 5, 7):
        assert line_shard(line, shards, 1000) == shard_of(account, shards)


HOSTILE = [
    b'{"type":"usage","meta":{"account_id":"other"},"account_id":"acme","ts":1,"event":"x"}',
    b'{"type":"usage","account_id" : "acme","meta":{"account_id":"other"},"ts":1,"event":"x"}',
    b'{"type":"usage","account\\u005fid":"acme","meta":{"account_id":"other"},"ts":1,"event":"x"}',
    b'{"type":"usage","account_id":"ac\\"me","ts":1,"event":"x"}',
    b'{"type":"usage","account_id":"other","account_id":"acme","ts":1,"event":"x"}',
    b'{"type":"usage","meta":{"account_id":"other"},"ts":1}',
    b"",
    b"   ",
    b'{"type":"usage","account_id":"acme","ts":1,"event":"x"}\r',
]


@pytest.mark.parametrize("odd", [None, *HOSTILE])
def test_a_batch_of_lines_goes_where_each_line_would(odd: bytes | None) -> None:
    """The batch-at-once path of pass 1 takes the lines :func:`line_shard` gives each shard, one line that
    does not fit it (or none) in the batch, and a last line with or without its end."""
    plain = [b'{"type":"usage","account_id":"a%d","ts":1,"event":"x"}' % n for n in range(40)]
    lines = plain[:17] + ([odd] if odd is not None else []) + plain[17:]
    for last_end in (b"\n", b""):
        batch = [line + b"\n" for line in lines[:-1]] + [lines[-1] + last_end]
        joined = b"".join(batch)
        for shards in (2, 3, 7):
            expected = [line_shard(line.rstrip(b"\r\n"), shards, 1000) for line in batch]
            for shard in range(shards):
                assert shard_lines(batch, joined, shard, shards, 1000) == [e == shard for e in expected]


def test_an_invalid_line_belongs_to_shard_zero() -> None:
    assert line_shard(b'{"type":"usage","meta":{"account_id":"other"},"ts":1}', 7, 1000) == 0
