"""The command line as users run it: the embedded broker's lifecycle and the demo, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_harness import free_port

REPO = Path(__file__).resolve().parent.parent


def cli_env(tmp_path: Path) -> dict[str, str]:
    """A private embedded broker (own port and data) sharing the repo's downloaded jars."""
    home = tmp_path / "kafka-home"
    home.mkdir()
    (home / "libs").symlink_to((REPO / ".kafka" / "libs").resolve())
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
    env.update(
        CHURNWATCH_KAFKA_HOME=str(home),
        CHURNWATCH_KAFKA_PORT=str(free_port(pair=True)),
        CHURNWATCH_WEB_PORT=str(free_port()),
        CHURNWATCH_DATA_DIR=str(tmp_path / "data"),
        CHURNWATCH_SESSION_TIMEOUT_SECONDS="6",
        CHURNWATCH_HEARTBEAT_INTERVAL_SECONDS="1",
    )
    return env


def churnwatch(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.kafka
def test_kafka_start_status_stop(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert churnwatch("kafka", "status", env=env).returncode == 1
    started = churnwatch("kafka", "start", env=env)
    try:
        assert started.returncode == 0, started.stderr
        status = churnwatch("kafka", "status", env=env)
        assert status.returncode == 0 and "running" in status.stdout
        again = churnwatch("kafka", "start", env=env)  # idempotent: the running broker is reused
        assert again.returncode == 0 and again.stdout == started.stdout
    finally:
        stopped = churnwatch("kafka", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert churnwatch("kafka", "status", env=env).returncode == 1


@pytest.mark.kafka
def test_demo_runs_the_whole_pipeline_and_stops_the_broker(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = churnwatch(
        "demo", "--accounts", "20", "--days", "14", "--rate", "2000", "--duration", "25", env=env, timeout=180
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = re.search(
        r"demo finished: ([\d,]+) events produced, ([\d,]+) folded, ([\d,]+) accounts, "
        r"([\d,]+) dead",
        result.stdout.replace("\n", " "),
    )
    assert summary is not None, result.stdout[-2000:]
    produced, folded, accounts, dead = (int(group.replace(",", "")) for group in summary.groups())
    assert produced > 1000 and folded > 0 and accounts == 20
    assert dead >= 1  # the demo injects a malformed record every 2 000 events
    assert churnwatch("kafka", "status", env=env).returncode == 1  # the demo stopped the broker it started
