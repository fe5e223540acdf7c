"""The command line as users run it: the embedded broker's lifecycle and the demo, end to end."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest

from tests.kafka_harness import free_port, wait_until

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


PROGRESS = re.compile(
    r"produced (?P<produced>[\d,]+)(?P<done> \(done\))? \| folded (?P<folded>[\d,]+) .*"
    r"\| accounts (?P<accounts>[\d,]+) \| at risk [\d,]+ \| alerts delivered [\d,]+ "
    r"\| dead letters (?P<dead>[\d,]+) \| worker answering"
)
SUMMARY = re.compile(
    r"demo finished: (?P<produced>[\d,]+) events produced, (?P<folded>[\d,]+) folded, "
    r"(?P<accounts>[\d,]+) accounts, (?P<dead>[\d,]+) dead letters, [\d,]+ accounts at risk, "
    r"(?P<alerts>[\d,]+) alerts delivered"
)


def numbers(match: re.Match[str]) -> dict[str, int]:
    return {
        name: int(value.replace(",", ""))
        for name, value in match.groupdict().items()
        if value and name != "done"
    }


class Demo:
    """``churnwatch demo`` with stdout piped (as in CI), its output read line by line while it runs."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams", "demo", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.stdout[-40:]) + "\n--- stderr ---\n" + "\n".join(self.stderr[-40:])

    def progress(self) -> list[dict[str, int]]:
        """Numbers of each progress line in which the worker answered."""
        return [
            {**numbers(match), "done": int(match["done"] is not None)}
            for line in list(self.stdout)
            if (match := PROGRESS.search(line))
        ]

    def caught_up(self, accounts: int) -> dict[str, int] | None:
        """The first progress line saying everything was produced and folded (or dead-lettered)."""
        if self.process.poll() is not None:
            raise AssertionError(f"the demo exited early:\n{self.output()}")
        for row in self.progress():
            if row["done"] and row["folded"] + row["dead"] >= row["produced"] and row["accounts"] == accounts:
                return row
        return None

    def worker_pid(self) -> int:
        match = re.search(r"worker started \(pid (\d+)", "\n".join(self.stdout))
        assert match is not None, self.output()
        return int(match[1])

    def wait(self, timeout: float = 120) -> int:
        """The exit code, once the demo ended and its output was read to the end."""
        code = self.process.wait(timeout)
        for reader in self.readers:
            reader.join(10)
        return code


def left_behind(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """Processes of this test (their command line or environment names its directory) and bound ports."""
    marker = str(tmp_path).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "cmdline").read_bytes() or marker in (proc / "environ").read_bytes():
                found.append(f"pid {proc.name}: {(proc / 'cmdline').read_bytes()[:200]!r}")
        except OSError:  # gone meanwhile, or not ours
            continue
    kafka_port = int(env["CHURNWATCH_KAFKA_PORT"])
    for port in (int(env["CHURNWATCH_WEB_PORT"]), kafka_port, kafka_port + 1):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                found.append(f"port {port} still bound")
    return found


@pytest.mark.kafka
def test_demo_runs_the_whole_pipeline_and_stops_the_broker(tmp_path: Path) -> None:
    """Two demo runs in a row, piped: the first stopped by Ctrl-C, the second losing its worker.

    Each leaves no process and no bound port; the second shows only its own accounts.
    """
    env = cli_env(tmp_path)
    first = Demo(env, "--accounts", "20", "--days", "14", "--rate", "2000")
    try:
        caught_up = wait_until(lambda: first.caught_up(20), timeout=240, what="the first demo caught up")
        first.process.send_signal(signal.SIGINT)  # Ctrl-C
        assert first.wait() == 0, first.output()
    finally:
        first.process.kill()
    summary = SUMMARY.search(" ".join(first.stdout))
    assert summary is not None, first.output()
    final = numbers(summary)
    # Nothing was produced after the catch-up line: the summary holds the same numbers, as of the stop.
    del caught_up["done"]
    assert {key: final[key] for key in caught_up} == caught_up
    assert final["dead"] >= 1  # an early malformed record, however slowly the demo ran
    assert "worker stopped" in first.stdout  # exit code 0 (on the embedded broker it used to hang for 20 s)
    assert final["produced"] > 1000
    assert not first.stderr or "Traceback" not in "\n".join(first.stderr)
    assert left_behind(tmp_path, env) == []
    assert churnwatch("kafka", "status", env=env).returncode == 1  # the demo stopped the broker it started

    second = Demo(env, "--accounts", "12", "--days", "14", "--rate", "2000", "--seed", "3")
    try:
        wait_until(lambda: second.caught_up(12), timeout=240, what="the second demo caught up")
        assert max(row["accounts"] for row in second.progress()) == 12  # never the first run's accounts
        os.kill(second.worker_pid(), signal.SIGKILL)
        assert second.wait() == 1, second.output()
    finally:
        second.process.kill()
    errors = "\n".join(second.stderr)
    assert "the worker was killed by SIGKILL" in errors and "Traceback" not in errors, second.output()
    log_lines = (tmp_path / "data" / "demo-worker.log").read_text().splitlines()
    assert log_lines[-1] in errors  # the last lines of the worker's log, said at once
    assert (
        SUMMARY.search(" ".join(second.stdout)) is None
    )  # no summary of numbers the worker cannot vouch for
    assert left_behind(tmp_path, env) == []
