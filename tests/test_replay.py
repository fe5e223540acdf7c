"""Offline replay over a small simulated customer base, through run_replay and the typer command."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from detectors.alerts import AlertKind
from detectors.monitor import DetectorConfig
from detectors.windows import DAY_MS
from streams.cli.replay import replay
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.live.holdout import Holdout
from streams.offline.replay import run_replay
from streams.offline.replay_outputs import build_report, state_sizes

START = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("replay")
    events, truth = folder / "events.jsonl", folder / "truth.jsonl"
    config = SimulationConfig(
        seed=5, accounts=80, days=80, start=START, silent=0.1, involuntary=0.1, slow_disengage=0.1
    )
    write_jsonl(Simulation(config), events, truth)
    return events, truth


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("replay")(replay)
    app.command("noop")(lambda: None)  # a second command keeps "replay" a subcommand, as on the main app
    return app


def test_run_replay_scores_every_account(sim_files: tuple[Path, Path]) -> None:
    events, truth = sim_files
    result = run_replay(events.read_bytes().splitlines())
    accounts = {row["account_id"] for row in map(orjson.loads, truth.read_bytes().splitlines())}
    assert set(result.windows) == accounts
    assert set(result.assessments) == accounts
    assert all(0.0 <= a.risk <= 1.0 for a in result.assessments.values())
    assert result.bad_lines == 0 and result.events == result.lines
    assert result.sweeps >= 79
    sizes = state_sizes(result)
    assert sizes["detector_max"] < 1024


def test_cli_writes_scores_alerts_and_report(
    sim_files: tuple[Path, Path], app: typer.Typer, tmp_path: Path
) -> None:
    events, truth = sim_files
    scores, alerts, report = tmp_path / "scores.csv", tmp_path / "alerts.jsonl", tmp_path / "report.json"
    outcome = CliRunner().invoke(
        app,
        ["replay", str(events), "--scores", str(scores), "--alerts", str(alerts), "--report", str(report)],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "churnwatch replay" in outcome.output
    truth_rows = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    with scores.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["account_id"] for r in rows} == {t["account_id"] for t in truth_rows}
    assert {"account_id", "risk", "severity", "reasons", "plan", "mrr"} <= set(rows[0])
    assert all(0.0 <= float(r["risk"]) <= 1.0 for r in rows)
    assert all(r["severity"] for r in rows if r["episode_id"]), "an open episode always has a severity"
    records = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert records, "a base with 10% silent and 10% involuntary churners must raise alerts"
    for record in records:
        assert {"account_id", "ts", "kind", "severity", "risk", "reasons", "transition", "episode_id"} <= set(
            record
        )
        datetime.fromisoformat(record["ts"])
        assert record["kind"] in {k.value for k in AlertKind}
        assert 0.0 <= record["risk"] <= 1.0
        # Like live alerts, every record carries its revenue at risk (risk x MRR).
        assert record["revenue_at_risk"] == pytest.approx(record["risk"] * (record["mrr"] or 0.0), abs=0.01)
        if record["transition"] == "opened":
            assert record["reasons"], "every flagged account carries reasons"
    body = orjson.loads(report.read_bytes())
    for key in (
        "churners",
        "flagged_share",
        "lead_days",
        "survivor_alerts_per_30_days",
        "precision",
        "calibration",
    ):
        assert key in body, key
    assert {"median", "p25"} <= set(body["lead_days"])
    assert {"brier", "reliability"} <= set(body["calibration"])
    assert body["churners"] == sum(
        1
        for t in truth_rows
        if t["churned"] and datetime.fromisoformat(t["churn_ts"]) >= START.replace(day=22)
    )


def test_as_of_stops_the_clock(sim_files: tuple[Path, Path], app: typer.Typer, tmp_path: Path) -> None:
    events, _ = sim_files
    as_of = "2026-07-10T12:00:00Z"
    as_of_ms = int(datetime.fromisoformat(as_of).timestamp() * 1000)
    result = run_replay(events.read_bytes().splitlines(), as_of_ms=as_of_ms)
    assert result.clock_ms == as_of_ms
    assert result.after_as_of > 0
    assert all(w.watermark_ms is None or w.watermark_ms <= as_of_ms for w in result.windows.values())
    assert all(a.event_ts_ms <= as_of_ms for a in result.alerts)
    assert all(
        s.learned_through is None or s.learned_through < as_of_ms // DAY_MS for s in result.states.values()
    )
    alerts = tmp_path / "alerts.jsonl"
    outcome = CliRunner().invoke(app, ["replay", str(events), "--as-of", as_of, "--alerts", str(alerts)])
    assert outcome.exit_code == 0, outcome.output
    assert all(orjson.loads(line)["ts"] <= as_of for line in alerts.read_bytes().splitlines())
    bad = CliRunner().invoke(app, ["replay", str(events), "--as-of", "yesterday"])
    assert bad.exit_code != 0


def test_bad_lines_are_counted_not_fatal(sim_files: tuple[Path, Path]) -> None:
    events, _ = sim_files
    lines = events.read_bytes().splitlines()[:5000]
    garbage = [
        b"{not json",
        b'{"type":"usage","account_id":"a"}',
        b'{"type":"teleport","account_id":"a","ts":1795687200000}',
        b"[1,2,3]",
        b"",
    ]
    result = run_replay([*lines[:2500], *garbage, *lines[2500:]])
    assert result.bad_lines == 4  # the blank line is not an event at all
    assert result.bad_reasons == {
        "invalid_json": 1,
        "missing_field": 1,
        "unknown_type": 1,
        "not_an_object": 1,
    }
    assert result.events == 5000
    report = build_report(result)
    assert report["bad_lines"] == 4


def test_replay_is_deterministic(sim_files: tuple[Path, Path]) -> None:
    events, _ = sim_files
    lines = events.read_bytes().splitlines()
    first = run_replay(lines, config=DetectorConfig())
    second = run_replay(lines, config=DetectorConfig())
    assert [a.to_dict() for a in first.alerts] == [a.to_dict() for a in second.alerts]
    assert {k: v.risk for k, v in first.assessments.items()} == {
        k: v.risk for k, v in second.assessments.items()
    }


def test_ingestion_outage_in_the_file_raises_one_incident(sim_files: tuple[Path, Path]) -> None:
    events, truth = sim_files
    lines = events.read_bytes().splitlines()
    accounts = sorted(orjson.loads(line)["account_id"] for line in truth.read_bytes().splitlines())
    lost = set(accounts[::2])  # half the accounts' usage is lost for six days
    outage_from = int(datetime(2026, 7, 20, tzinfo=UTC).timestamp() * 1000)
    outage_to = outage_from + 6 * DAY_MS

    def survives(line: bytes) -> bool:
        body = orjson.loads(line)
        if body["type"] != "usage" or body["account_id"] not in lost:
            return True
        ts = int(datetime.fromisoformat(body["ts"]).timestamp() * 1000)
        return not outage_from <= ts < outage_to

    clean = run_replay(lines)
    broken = run_replay([line for line in lines if survives(line)])
    incidents = [a for a in broken.alerts if a.kind is AlertKind.PIPELINE_INCIDENT]
    assert [a.transition.value for a in incidents][:1] == ["opened"]
    assert sum(1 for a in incidents if a.transition.value == "opened") == 1
    assert outage_from <= incidents[0].event_ts_ms <= outage_from + 3 * DAY_MS
    assert not [a for a in clean.alerts if a.kind is AlertKind.PIPELINE_INCIDENT]

    def opened_during(result: object) -> set[str]:
        return {
            a.account_id
            for a in result.alerts  # type: ignore[attr-defined]
            if a.kind is AlertKind.ACCOUNT_RISK
            and a.transition.value == "opened"
            and outage_from <= a.event_ts_ms <= outage_to + 14 * DAY_MS
        }

    # The outage adds no account alerts: the guard held back what it caused.
    assert opened_during(broken) <= opened_during(clean)
    assert broken.suppressed


def test_replay_with_a_holdout_stamps_alerts_and_reports_the_uplift_the_alerts_give(
    sim_files: tuple[Path, Path], app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's uplift is what an analyst gets back from the stamped alerts file and the cancellations."""
    events, truth = sim_files
    monkeypatch.setenv("CHURNWATCH_HOLDOUT_SHARE", "0.5")
    monkeypatch.setenv("CHURNWATCH_HOLDOUT_EXPERIMENT", "q3-saves")
    alerts, report = tmp_path / "alerts.jsonl", tmp_path / "report.json"
    outcome = CliRunner().invoke(
        app, ["replay", str(events), "--alerts", str(alerts), "--report", str(report)]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "holdout q3-saves (50%)" in outcome.output
    uplift = orjson.loads(report.read_bytes())["uplift"]
    assert (uplift["experiment"], uplift["share"]) == ("q3-saves", 0.5)
    records = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    holdout = Holdout(0.5, "q3-saves")
    account_alerts = [r for r in records if r["kind"] == AlertKind.ACCOUNT_RISK.value]
    assert account_alerts
    for record in account_alerts:
        stamp = record["extra"]["holdout"]
        assert stamp == {
            "experiment": "q3-saves",
            "share": 0.5,
            "held_out": holdout.member(record["account_id"]),
        }
    # Redo the numbers from the records: first opened alert per account, settled 30 days before the end.
    cancels = {
        row["account_id"]: int(datetime.fromisoformat(row["churn_ts"]).timestamp() * 1000)
        for row in map(orjson.loads, truth.read_bytes().splitlines())
        if row["churned"]
    }
    first: dict[str, tuple[int, bool]] = {}
    for record in account_alerts:
        if record["transition"] == "opened" and record["account_id"] not in first:
            ts = int(datetime.fromisoformat(record["ts"]).timestamp() * 1000)
            first[record["account_id"]] = (ts, record["extra"]["holdout"]["held_out"])
    end_ms = int(datetime.fromisoformat(orjson.loads(report.read_bytes())["clock"]).timestamp() * 1000)
    groups = {True: [0, 0], False: [0, 0]}
    pending = 0
    for account, (ts, held) in first.items():
        cancel = cancels.get(account)
        if cancel is not None and cancel < ts:
            continue
        if ts + 30 * DAY_MS > end_ms:
            pending += 1
            continue
        groups[held][0] += 1
        groups[held][1] += cancel is not None and cancel <= ts + 30 * DAY_MS
    assert uplift["pending"] == pending
    estimate = uplift["estimate"]
    assert estimate is not None, "both groups of an 80-account base with 20 % churners have settled accounts"
    assert [estimate["delivered"]["accounts"], estimate["delivered"]["churned"]] == groups[False]
    assert [estimate["held_out"]["accounts"], estimate["held_out"]["churned"]] == groups[True]
