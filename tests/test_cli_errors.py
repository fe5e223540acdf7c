"""User mistakes on the command line: one line naming the problem, a non-zero exit, never a traceback."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.errors import ConfigError
from streams.settings import load_settings, setting
from tests.kafka_harness import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def env_without_config(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "streams", *args],
        env=env or env_without_config(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one error line of a refused command (asserting: non-zero exit, no traceback, ``words`` in it)."""
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output and '  File "' not in output, output
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("start", "problem"),
    [("garbage", "not a date like 2026-03-01"), ("2026-13-01", "month must be in 1..12")],
)
def test_simulate_bad_start(tmp_path: Path, start: str, problem: str) -> None:
    done = run("simulate", "--start", start, "--out", str(tmp_path / "e.jsonl"), "--days", "2")
    refused(done, "--start", start, problem)


def test_simulate_out_is_a_directory(tmp_path: Path) -> None:
    refused(run("simulate", "--out", str(tmp_path), "--days", "2"), "--out", "is a directory")


def test_simulate_out_in_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "e.jsonl"
    refused(run("simulate", "--out", str(target), "--days", "2"), "--out", "does not exist")


def test_replay_scores_into_a_missing_directory_is_refused_before_reading(tmp_path: Path) -> None:
    # stdin stays open and empty: the command can only finish if it refuses before reading any event.
    with subprocess.Popen(
        [sys.executable, "-m", "streams", "replay", "-", "--scores", str(tmp_path / "no" / "s.csv")],
        env=env_without_config(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        stdout, stderr = process.communicate(timeout=120)
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    refused(done, "--scores", "does not exist")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"alert_threshold = 0.3\nretention_days = [\n", ("line 2", "TOML syntax error")),
        (b"alert_threshold = 0.3\n\xff\xfe = 1\n", ("line 2", "not UTF-8")),
        (b"no_such_setting = 1\n", ("unknown setting 'no_such_setting'",)),
    ],
)
def test_config_file_errors_name_the_file_and_line(tmp_path: Path, content: bytes, words: tuple[str]) -> None:
    config = tmp_path / "churnwatch.toml"
    config.write_bytes(content)
    done = run("alerts", "test", "slack", env=env_without_config(CHURNWATCH_CONFIG_FILE=str(config)))
    refused(done, "CHURNWATCH_CONFIG_FILE", str(config), *words)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_config_file_missing_or_a_directory_fails(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "absent.toml" if kind == "missing" else tmp_path
    done = run("alerts", "test", "slack", env=env_without_config(CHURNWATCH_CONFIG_FILE=str(path)))
    refused(done, "CHURNWATCH_CONFIG_FILE", str(path), "does not exist" if kind == "missing" else "directory")


@pytest.mark.parametrize(
    "content",
    [
        "[churnwatch]\nalert_threshold = 0.42\n",
        "ALERT_THRESHOLD = 0.42\n",
        "CHURNWATCH_ALERT_THRESHOLD = 0.42\n",
    ],
)
def test_config_file_table_and_upper_case_keys_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    for key in [k for k in os.environ if k.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(key)
    config = tmp_path / "c.toml"
    config.write_text(content)
    monkeypatch.setenv("CHURNWATCH_CONFIG_FILE", str(config))
    assert load_settings().detection.alert_threshold == pytest.approx(0.42)
    monkeypatch.setenv("CHURNWATCH_ALERT_THRESHOLD", "0.5")  # the environment still wins over the file
    assert load_settings().detection.alert_threshold == pytest.approx(0.5)


def test_bad_config_value_in_file_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[churnwatch]\nalert_threshold = 7\n")
    monkeypatch.setenv("CHURNWATCH_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match="CHURNWATCH_ALERT_THRESHOLD"):
        load_settings()


def test_snooze_with_kafka_unreachable() -> None:
    env = env_without_config(CHURNWATCH_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    line = refused(run("alerts", "snooze", "acme", "--for", "3d", env=env), "cannot reach Kafka")
    assert "not recorded" in line


def test_alerts_test_unconfigured_sink_names_the_variable() -> None:
    refused(run("alerts", "test", "slack"), "not configured", "CHURNWATCH_SLACK_WEBHOOK_URL")


def test_alerts_test_unknown_sink() -> None:
    refused(run("alerts", "test", "pagerduty"), "unknown sink 'pagerduty'", "slack, webhook, jsonl")


@pytest.mark.parametrize("duration", ["-3d", "0d"])
def test_snooze_refuses_non_positive_durations(duration: str) -> None:
    refused(run("alerts", "snooze", "acme", "--for", duration), "--for", "more than zero")


def test_bad_webhook_url_is_blamed_on_the_url() -> None:
    env = env_without_config(CHURNWATCH_WEBHOOK_URL="not-a-url", CHURNWATCH_WEBHOOK_SECRET=SECRET)
    line = refused(run("alerts", "test", "webhook", env=env), "CHURNWATCH_WEBHOOK_URL")
    assert "CHURNWATCH_WEBHOOK_SECRET" not in line


@pytest.mark.parametrize("args", [["--version"], ["-h"], ["--help"], []])
def test_version_help_and_bare_command_exit_zero(args: list[str]) -> None:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert ("churnwatch 0." in done.stdout) if args == ["--version"] else ("replay" in done.stdout)


def test_subcommand_short_help_shows_real_defaults() -> None:
    done = run("replay", "-h", env=env_without_config(COLUMNS="300"))
    assert done.returncode == 0 and "--scores" in done.stdout, done.stderr
    default = setting("alert_threshold").info.default
    assert f"$CHURNWATCH_ALERT_THRESHOLD if set, else {default}." in done.stdout


# -- outputs people read ------------------------------------------------------------------------------------


def test_scores_csv_ranked_by_revenue_at_risk_and_escaped(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = []
    for day in range(1, 29):
        for account in ("=cmd|calc!A1", "big", "small"):
            lines.append(
                f'{{"type":"usage","account_id":"{account}","ts":"2026-03-{day:02d}T10:00:00Z",'
                f'"event":"login","user_id":"u1","count":{0 if day > 20 and account != "small" else 5}}}'
            )
    for account, mrr in (("=cmd|calc!A1", 10.0), ("big", 900.0), ("small", 50.0)):
        lines.append(
            f'{{"type":"billing","account_id":"{account}","ts":"2026-03-01T00:00:00Z",'
            f'"kind":"subscription_created","mrr":{mrr},"plan":"pro"}}'
        )
    events.write_text("\n".join(lines) + "\n")
    scores = tmp_path / "scores.csv"
    done = run("replay", str(events), "--scores", str(scores))
    assert done.returncode == 0, done.stderr
    with scores.open() as handle:
        rows = list(csv.DictReader(handle))
    ids = [row["account_id"] for row in rows]
    assert set(ids) == {"'=cmd|calc!A1", "big", "small"}
    revenue = [float(row["revenue_at_risk"]) for row in rows]
    assert revenue == sorted(revenue, reverse=True)
    for row in rows:
        assert float(row["revenue_at_risk"]) == pytest.approx(
            float(row["risk"]) * float(row["mrr"]), abs=0.01
        )


def test_simulate_and_replay_print_plain_progress_when_piped(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    done = run("simulate", "--out", str(events), "--accounts", "20", "--days", "10", "--seed", "1")
    assert done.returncode == 0, done.stderr
    written = int(done.stdout.split()[1])
    assert f"simulate: {written:,} events written - finished" in done.stderr.splitlines()
    done = run("replay", str(events))
    assert done.returncode == 0, done.stderr
    last = [line for line in done.stderr.splitlines() if line.startswith("replay: ")][-1]
    assert last.endswith("finished") and f"{written:,} events" in last, done.stderr


def test_explain_needs_one_source_and_says_when_the_worker_is_unreachable(tmp_path: Path) -> None:
    refused(run("explain", "acme"), "either --events FILE", "--worker URL")
    url = f"http://127.0.0.1:{free_port()}"
    refused(run("explain", "acme", "--worker", url), "--worker", "cannot reach the worker")
    events = tmp_path / "e.jsonl"
    events.write_text('{"type":"usage","account_id":"other","ts":"2026-03-01T10:00:00Z","event":"login"}\n')
    refused(run("explain", "acme", "--events", str(events)), "account 'acme' has no valid event")
