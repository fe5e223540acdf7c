"""Historical data is data: replay accepts any time that parses; the live path's lower bound is a setting."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from detectors.windows import DAY_MS, WindowConfig
from streams.cli.replay import replay
from streams.errors import ConfigError
from streams.events import MIN_TS_MS, DeadLetterReason, InvalidEventError, parse_ts, validate
from streams.live.ingest import BatchFolder, RawRecord
from streams.offline.replay import run_replay
from streams.settings import load_settings

T_1997 = 852_076_800_000  # 1997-01-01T00:00:00Z
NOW_MS = 1_795_687_200_000  # 2026-11-26T10:00:00Z


def usage(ts: object, account: str = "cd-00001") -> dict[str, object]:
    return {"type": "usage", "account_id": account, "ts": ts, "event": "purchase", "count": 2}


def test_live_bound_rejects_1997_naming_the_setting() -> None:
    with pytest.raises(InvalidEventError) as caught:
        validate(usage("1997-01-01T00:00:00Z"))
    assert caught.value.reason is DeadLetterReason.INVALID_TS
    assert "CHURNWATCH_MIN_EVENT_TS" in str(caught.value)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("1997-01-01T00:00:00Z", T_1997),
        (T_1997, T_1997),
        ("1960-05-01T12:00:00+02:00", -305_128_800_000),
        (-305_128_800_000, -305_128_800_000),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000),
    ],
)
def test_without_a_bound_any_parsable_time_is_accepted(ts: object, expected: int) -> None:
    assert parse_ts(ts, min_ts_ms=None) == expected
    assert validate(usage(ts), min_ts_ms=None).ts_ms == expected


@pytest.mark.parametrize("ts", [253_402_300_800_000, -62_135_596_800_001, 2**63, "1997-01-01 00:00"])
def test_unparsable_or_unrepresentable_times_stay_invalid(ts: object) -> None:
    with pytest.raises(InvalidEventError) as caught:
        validate(usage(ts), min_ts_ms=None)
    assert caught.value.reason is DeadLetterReason.INVALID_TS


def test_min_event_ts_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().windows.min_event_ts_ms == MIN_TS_MS
    monkeypatch.setenv("CHURNWATCH_MIN_EVENT_TS", "1990-01-01T00:00:00Z")
    assert load_settings().windows.min_event_ts_ms == 631_152_000_000
    monkeypatch.setenv("CHURNWATCH_MIN_EVENT_TS", "1990-01-01")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.setting == "CHURNWATCH_MIN_EVENT_TS"


def _fold(folder: BatchFolder, body: dict[str, object]) -> tuple[int, list[str]]:
    raw = orjson.dumps(body)
    record = RawRecord("usage", b"cd-00001", raw, "churnwatch.usage", 0, 0)
    result = folder.fold([record], lambda key: None)
    return result.folded, [dead.reason.value for dead in result.dead_letters]


def test_live_ingest_uses_the_setting() -> None:
    def folder(min_ts_ms: int) -> BatchFolder:
        return BatchFolder(
            window_config=WindowConfig(),
            max_event_bytes=4096,
            max_future_skew_ms=DAY_MS,
            clock=lambda: NOW_MS,
            min_ts_ms=min_ts_ms,
        )

    default = load_settings().windows.min_event_ts_ms
    assert _fold(folder(default), usage("1997-01-01T00:00:00Z")) == (0, ["invalid_ts"])
    lowered = load_settings(min_event_ts="1990-01-01T00:00:00Z").windows.min_event_ts_ms
    assert _fold(folder(lowered), usage("1997-01-01T00:00:00Z")) == (1, [])


def purchases_1997() -> list[bytes]:
    """Two customers buying on a few days of 1997 (CDNOW-like)."""
    lines = []
    for day in (0, 3, 9, 20, 41, 70):
        for account in ("cd-00001", "cd-00002"):
            lines.append(orjson.dumps(usage(T_1997 + day * DAY_MS + 36_000_000, account)))
    return lines


def test_replay_accepts_1990s_data() -> None:
    result = run_replay(purchases_1997())
    assert result.bad_lines == 0
    assert result.events == 12
    assert result.first_ts_ms == T_1997 + 36_000_000
    assert set(result.windows) == {"cd-00001", "cd-00002"}


def test_replay_cli_accepts_1990s_data(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("replay")(replay)
    app.command("noop")(lambda: None)
    events = tmp_path / "cdnow.jsonl"
    events.write_bytes(b"\n".join(purchases_1997()) + b"\n")
    report = tmp_path / "report.json"
    outcome = CliRunner().invoke(app, ["replay", str(events), "--report", str(report)])
    assert outcome.exit_code == 0, outcome.output
    body = orjson.loads(report.read_bytes())
    assert body["events"] == 12 and body["bad_lines"] == 0
    assert body["clock"].startswith("1997-03-12")
