"""``churnwatch replay --jobs N``: the shard processes die with the replay that started them, even killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

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


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


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
