"""``churnwatch replay --jobs N``: the shard processes die with the replay that started them, even killed, and
the readers of ``--jobs N --feedback`` end with their pass."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import orjson
import pytest

from streams.dev.simulator import Simulation, SimulationConfig
from tests.kafka_harness import wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's")


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that are still alive (from /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the task ended meanwhile
            continue
    return found


def at_least(count: int, pid: int) -> list[int] | None:
    found = children(pid)
    return found if len(found) >= count else None


def live_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command's name, while the process lives (not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields


def alive(pid: int) -> bool:
    return live_stat(pid) is not None


def test_shard_readers_die_with_a_killed_replay(tmp_path: Path) -> None:
    # A FIFO nobody writes to: each shard reader blocks opening it, as a reader of a large file is busy.
    source = tmp_path / "events.jsonl"
    os.mkfifo(source)
    replay = subprocess.Popen(
        [sys.executable, "-m", "streams", "replay", str(source), "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started: list[int] = []
    try:
        # The two shard processes are up (they fork: no resource tracker, unlike a spawning pool).
        started += wait_until(partial(at_least, 2, replay.pid), timeout=60, what="the shard processes")
        replay.kill()
        replay.wait(10)
        wait_until(lambda: not any(alive(pid) for pid in started), timeout=30, what="the readers to exit")
    finally:
        replay.kill()
        for pid in filter(alive, started):  # what the fix under test did not stop
            os.kill(pid, signal.SIGKILL)


def readers(pid: int) -> list[int]:
    """The pool's reader processes of a replay (spawned; not the pool's resource tracker)."""
    found = []
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if b"multiprocessing.spawn" in command:
            found.append(child)
    return found


def cpu_ticks(pid: int) -> int | None:
    """User + system CPU of a live process so far, in clock ticks (None once it is gone or a zombie)."""
    fields = live_stat(pid)
    return None if fields is None else int(fields[11]) + int(fields[12])


def feedback_replay(tmp_path: Path, stderr: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """``replay --jobs 2 --feedback``, which reads on 2 processes, then replays on one (500 accounts x 60
    days: a few seconds each way), in its own process group with SIGINT as a terminal has it."""
    source = tmp_path / "events.jsonl"
    if not source.exists():
        config = SimulationConfig(seed=5, accounts=500, days=60, start=datetime(2026, 3, 1, tzinfo=UTC))
        source.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in Simulation(config).events()))
    answers = tmp_path / "answers.jsonl"
    answer = {"account_id": "acct-000001", "alert_id": "x", "label": "real", "user": "ana", "source": "api"}
    answers.write_bytes(orjson.dumps({**answer, "answered_ts_ms": 1_775_000_000_000}) + b"\n")
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "replay", str(source), "--jobs", "2", "--feedback", str(answers)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
        preexec_fn=partial(
            signal.signal, signal.SIGINT, signal.SIG_DFL
        ),  # not ignored, as a runner may have it
    )


def test_the_readers_of_a_feedback_replay_end_with_their_pass(tmp_path: Path) -> None:
    """The readers end when pass 1 does, not with the replay: they used to idle beside it (and a Ctrl-C then
    made each print a traceback of the pool's internals)."""
    replay = feedback_replay(tmp_path)
    try:
        wait_until(lambda: len(readers(replay.pid)) >= 2, timeout=60, what="the two readers")
        wait_until(lambda: not readers(replay.pid), timeout=120, what="the readers to end")
        at_readers_end = cpu_ticks(replay.pid)
        samples: list[int] = []

        def exited() -> bool:
            ticks = cpu_ticks(replay.pid)
            if ticks is not None:
                samples.append(ticks)
            return ticks is None

        wait_until(exited, timeout=120, what="the replay to end", interval=0.05)
        replay.wait(30)
    finally:
        if replay.poll() is None:
            os.killpg(replay.pid, signal.SIGKILL)
    assert replay.returncode == 0
    assert at_readers_end is not None and samples
    assert at_readers_end < 0.7 * samples[-1], (at_readers_end, samples[-1])  # most of the replay came after


def test_a_ctrl_c_while_a_feedback_replay_runs_is_quiet(tmp_path: Path) -> None:
    replay = feedback_replay(tmp_path, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(readers(replay.pid)) >= 2, timeout=60, what="the two readers")
        wait_until(lambda: not readers(replay.pid), timeout=120, what="the readers to end")
        assert replay.poll() is None, "the replay ended before it could be interrupted"
        os.killpg(replay.pid, signal.SIGINT)
        _, errors = replay.communicate(timeout=30)
    finally:
        if replay.poll() is None:
            os.killpg(replay.pid, signal.SIGKILL)
    assert replay.returncode == 130, errors.decode()
    assert b"Traceback" not in errors, errors.decode()
