"""Replay users can trust: order, bad timestamps, duplicates, settings, rejects, gzip/stdin/BOM (issue 13).

Files come from the simulator (a small customer base); every run goes through the ``churnwatch replay``
command as a user would run it, unless the test is about one piece (sorting with spills, deduplication).
"""

from __future__ import annotations

import dataclasses
import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from detectors.windows import DAY_MS
from streams.cli.replay import replay
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.events import DeadLetterReason, InvalidEventError, validate
from streams.offline.replay_input import InputRules
from streams.offline.sorted_input import SortedInput, file_clock

START = datetime(2026, 6, 1, tzinfo=UTC)
RULES = InputRules(
    max_event_bytes=65_536, max_future_skew_ms=DAY_MS, dedup_horizon_ms=2 * DAY_MS, dedup_max_keys=250_000
)


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay_input") / "events.jsonl"
    config = SimulationConfig(
        seed=7, accounts=60, days=70, start=START, silent=0.15, involuntary=0.15, slow_disengage=0.1
    )
    write_jsonl(Simulation(config), path)
    return path


@pytest.fixture(scope="module")
def lines(events_file: Path) -> list[bytes]:
    return events_file.read_bytes().splitlines()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("replay")(replay)
    app.command("noop")(lambda: None)  # keeps "replay" a subcommand, as on the main app
    return app


@pytest.fixture(scope="module")
def baseline(app: typer.Typer, events_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The time-sorted file's alerts and report: what every damaged copy below must reproduce."""
    return run(app, tmp_path_factory.mktemp("baseline"), events_file)


def run(
    app: typer.Typer, folder: Path, source: Path | str, *args: str, stdin: bytes | None = None
) -> dict[str, Any]:
    alerts, report, rejects = folder / "alerts.jsonl", folder / "report.json", folder / "rejects.tsv"
    outcome = CliRunner().invoke(
        app,
        [
            "replay",
            str(source),
            "--alerts",
            str(alerts),
            "--report",
            str(report),
            "--rejects",
            str(rejects),
            *args,
        ],
        input=stdin,
    )
    assert outcome.exit_code == 0, outcome.output
    return {
        "alerts": alerts.read_bytes().splitlines(),
        "report": orjson.loads(report.read_bytes()),
        "rejects": [line.split(b"\t", 3) for line in rejects.read_bytes().splitlines()],
    }


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def fails(app: typer.Typer, *args: str) -> Result:
    outcome = CliRunner().invoke(app, ["replay", *args])
    assert outcome.exit_code != 0
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.exception
    assert "Traceback" not in outcome.output
    return outcome


def test_baseline_raises_alerts(baseline: dict[str, Any], lines: list[bytes]) -> None:
    assert baseline["alerts"], "a base with 15% silent and 15% involuntary churners must raise alerts"
    assert baseline["report"]["lines"] == baseline["report"]["events"] == len(lines)
    assert baseline["report"]["duplicates"] == 0 and baseline["rejects"] == []


def test_file_sorted_by_account_gives_the_same_alerts(
    app: typer.Typer, lines: list[bytes], baseline: dict[str, Any], tmp_path: Path
) -> None:
    by_account = sorted(lines, key=lambda line: orjson.loads(line)["account_id"])
    assert by_account != lines
    # A 1 MB sort buffer: the ~5 MB file is sorted in runs spilled to disk and merged.
    result = run(app, tmp_path, write(tmp_path / "by_account.jsonl", by_account), "--sort-memory-mb", "1")
    assert result["report"]["spilled_runs"] >= 3
    assert result["alerts"] == baseline["alerts"]
    assert result["report"]["events"] == baseline["report"]["events"]
    assert result["report"]["late_events"] == 0


def test_file_concatenated_by_type_gives_the_same_alerts(
    app: typer.Typer, lines: list[bytes], baseline: dict[str, Any], tmp_path: Path
) -> None:
    by_type = sorted(
        lines, key=lambda line: ["usage", "support", "billing"].index(orjson.loads(line)["type"])
    )
    result = run(app, tmp_path, write(tmp_path / "by_type.jsonl", by_type))
    assert result["alerts"] == baseline["alerts"]


def test_a_line_dated_2030_is_future_ts_and_does_not_move_the_clock(
    app: typer.Typer, lines: list[bytes], baseline: dict[str, Any], tmp_path: Path
) -> None:
    stray = orjson.loads(lines[len(lines) // 2])
    stray["ts"] = "2030-01-01T00:00:00Z"
    damaged = [*lines[: len(lines) // 2], orjson.dumps(stray), *lines[len(lines) // 2 :]]
    result = run(app, tmp_path, write(tmp_path / "stray.jsonl", damaged))
    assert result["report"]["clock"] == baseline["report"]["clock"]
    assert result["report"]["bad_reasons"] == {"future_ts": 1}
    assert result["alerts"] == baseline["alerts"]
    [(number, reason, _detail, text)] = result["rejects"]
    assert (int(number), reason, text) == (len(lines) // 2 + 1, b"future_ts", orjson.dumps(stray))


def test_now_judges_future_ts_against_a_given_clock(
    app: typer.Typer, lines: list[bytes], tmp_path: Path
) -> None:
    # Two days into the file: everything later than one day after that is from the future.
    now = START.replace(day=3)
    limit = now.timestamp() * 1000 + DAY_MS
    later = sum(1 for line in lines if validate(orjson.loads(line)).ts_ms > limit)
    result = run(app, tmp_path, write(tmp_path / "events.jsonl", lines), "--now", now.isoformat())
    assert later > 0
    assert result["report"]["bad_reasons"] == {"future_ts": later}
    assert result["report"]["input_clock"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_size_limit_of_the_settings_applies(
    app: typer.Typer, lines: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = orjson.loads(lines[10])
    big["padding"] = "x" * 5_000
    source = write(tmp_path / "big.jsonl", [*lines[:100], orjson.dumps(big)])
    monkeypatch.setenv("CHURNWATCH_MAX_EVENT_BYTES", "4096")
    result = run(app, tmp_path, source)
    assert result["report"]["bad_reasons"] == {"too_large": 1}
    assert [(int(n), r) for n, r, _d, _t in result["rejects"]] == [(101, b"too_large")]
    # A flag overrides the variable.
    assert run(app, tmp_path, source, "--max-event-bytes", "8192")["report"]["bad_reasons"] == {}


def test_every_line_twice_gives_the_same_result_and_counts_duplicates(
    app: typer.Typer, lines: list[bytes], baseline: dict[str, Any], tmp_path: Path
) -> None:
    doubled = [line for line in lines for _ in range(2)]
    result = run(app, tmp_path, write(tmp_path / "doubled.jsonl", doubled))
    assert result["alerts"] == baseline["alerts"]
    assert result["report"]["duplicates"] == len(lines)
    assert result["report"]["events"] == baseline["report"]["events"]
    assert result["report"]["bad_lines"] == 0
    numbers = sorted(int(n) for n, reason, _d, _t in result["rejects"] if reason == b"duplicate")
    assert numbers == list(range(2, 2 * len(lines) + 1, 2))  # the second copy of each line is dropped


def test_event_id_identifies_duplicates_with_different_content(tmp_path: Path) -> None:
    base = {"type": "usage", "account_id": "acme", "event": "login", "event_id": "e-1"}
    retried = [
        orjson.dumps({**base, "ts": "2026-06-01T10:00:00Z", "count": 1}),
        orjson.dumps({**base, "ts": "2026-06-01T10:00:01Z", "count": 2}),  # a retry that re-stamped it
        orjson.dumps({**base, "event_id": "e-2", "ts": "2026-06-01T10:00:02Z"}),
    ]
    with SortedInput(RULES) as source:
        source.read(iter(retried))
        accepted = list(source)
    assert accepted == [retried[0], retried[2]]
    assert source.stats.duplicates == 1
    with pytest.raises(InvalidEventError) as error:
        validate({**base, "ts": "2026-06-01T10:00:00Z", "event_id": 7})
    assert error.value.reason is DeadLetterReason.WRONG_TYPE


def test_replay_uses_the_workers_settings_and_their_bounds(
    app: typer.Typer, events_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = run(app, tmp_path, events_file, "--alert-threshold", "0.9")
    monkeypatch.setenv("CHURNWATCH_ALERT_THRESHOLD", "0.9")
    env = run(app, tmp_path, events_file)
    assert env["alerts"] == flag["alerts"]
    assert len(env["alerts"]) < len(run(app, tmp_path, events_file, "--alert-threshold", "0.35")["alerts"])
    for value in ("0", "1"):
        outcome = fails(app, str(events_file), "--alert-threshold", value)
        assert "--alert-threshold" in outcome.output and len(outcome.output.strip().splitlines()) == 1
    monkeypatch.setenv("CHURNWATCH_ALERT_THRESHOLD", "1.5")
    outcome = fails(app, str(events_file))
    assert "CHURNWATCH_ALERT_THRESHOLD" in outcome.output
    monkeypatch.delenv("CHURNWATCH_ALERT_THRESHOLD")
    for option, value in (
        ("--allowed-lateness-seconds", "-1"),
        ("--now", "yesterday"),
        ("--top-events", "0"),
    ):
        outcome = fails(app, str(events_file), option, value)
        assert outcome.output.startswith(f"error: {option}: "), outcome.output
        assert len(outcome.output.strip().splitlines()) == 1


def test_rejects_file_names_every_bad_line(app: typer.Typer, lines: list[bytes], tmp_path: Path) -> None:
    garbage = [b"{not json", b'{"type":"usage","account_id":"a"}', b"[1,2,3]", b'{"type":"teleport"}']
    source = write(tmp_path / "bad.jsonl", [*lines[:50], b"", *garbage, *lines[50:100]])
    result = run(app, tmp_path, source)
    got = {int(number): (reason.decode(), text) for number, reason, _detail, text in result["rejects"]}
    assert got == {
        52: ("invalid_json", garbage[0]),
        53: ("missing_field", garbage[1]),
        54: ("not_an_object", garbage[2]),
        55: ("unknown_type", garbage[3]),
    }
    assert result["report"]["lines"] == 104 and result["report"]["bad_lines"] == 4


@pytest.mark.parametrize("content", [b"", b"\n\n", b"{not json\n[]\n"], ids=["empty", "blank", "garbage"])
def test_a_file_without_a_valid_event_fails_clearly(app: typer.Typer, tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "nothing.jsonl"
    source.write_bytes(content)
    outcome = fails(app, str(source))
    # One error line (piped, the progress reporter may print its own line before it).
    [error] = [line for line in outcome.output.splitlines() if line.startswith("error:")]
    assert "held no valid event" in error
    assert "No such file" in fails(app, str(tmp_path / "missing.jsonl")).output


def test_bom_gzip_and_stdin_are_read(
    app: typer.Typer, lines: list[bytes], baseline: dict[str, Any], tmp_path: Path
) -> None:
    plain = b"".join(line + b"\n" for line in lines)
    with_bom = tmp_path / "bom.jsonl"
    with_bom.write_bytes(b"\xef\xbb\xbf" + plain)
    zipped = tmp_path / "events.jsonl.data"  # no .gz suffix: recognised by its magic bytes
    zipped.write_bytes(gzip.compress(plain))
    for result in (
        run(app, tmp_path, with_bom),
        run(app, tmp_path, zipped),
        run(app, tmp_path, "-", stdin=plain),
        run(app, tmp_path, "-", stdin=gzip.compress(plain)),
    ):
        assert result["report"]["bad_lines"] == 0
        assert result["report"]["events"] == len(lines)
        assert result["alerts"] == baseline["alerts"]
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(plain)[: len(plain) // 20])
    assert "cannot read the input" in fails(app, str(broken)).output


def test_spilled_runs_merge_to_the_in_memory_order(lines: list[bytes]) -> None:
    shuffled = sorted(lines, key=lambda line: orjson.loads(line)["account_id"])
    with SortedInput(RULES) as memory:
        memory.read(iter(shuffled))
        in_memory = list(memory)
    spill_rules = dataclasses.replace(RULES, sort_memory_bytes=200_000)
    with SortedInput(spill_rules) as spilled:
        spilled.read(iter(shuffled))
        merged = list(spilled)
    assert spilled.stats.spilled_runs >= 10
    assert merged == in_memory
    times = [validate(orjson.loads(line)).ts_ms for line in merged]
    assert times == sorted(times) and len(merged) == len(lines)


def test_file_clock_ignores_stray_times_but_follows_the_bulk() -> None:
    bulk = list(range(0, DAY_MS, DAY_MS // 100))
    assert file_clock([*bulk, 400 * DAY_MS, 401 * DAY_MS], skew_ms=DAY_MS) == bulk[-1]
    # A real gap (a billing preamble years before usage) is not mistaken for strays: the bulk is later.
    assert file_clock([-900 * DAY_MS, *bulk], skew_ms=DAY_MS) == bulk[-1]


def test_lines_read_in_batches_are_judged_one_by_one(tmp_path: Path) -> None:
    """Pass 1 checks a batch's text once (``plain_text``); a hostile line among plain ones is still judged
    alone: a number beyond a double or invalid UTF-8 in a field no decoder reads is invalid JSON."""
    good = [
        orjson.dumps({"type": "usage", "account_id": "a", "ts": 1_795_687_200_000 + i, "event": "x"})
        for i in range(20)
    ]
    extras = (b',"n":1e999}', b',"n":"\xff"}', b',"n":1}')
    hostile = [line[:-1] + extra for line, extra in zip(good[:3], extras, strict=True)]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([*good[3:10], *hostile, *good[10:]]) + b"\n")
    rejected: list[tuple[int, str]] = []
    with SortedInput(RULES, lambda line_no, reason, *_: rejected.append((line_no, reason))) as sorted_input:
        with path.open("rb") as stream:
            sorted_input.read(stream)
        accepted = list(sorted_input.events())
    assert rejected == [(8, "invalid_json"), (9, "invalid_json")]
    assert len(accepted) == 18
