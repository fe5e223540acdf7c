"""A running worker explains one account: its account endpoint and `churnwatch explain --worker`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.dev.producer import produce_live
from streams.dev.simulator import Simulation, SimulationConfig
from tests.kafka_harness import WorkerFactory, WorkerProcess, wait_until

pytestmark = pytest.mark.kafka

START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday, no simulator holiday in the weeks after it


def listed(worker: WorkerProcess) -> list[dict[str, Any]]:
    try:
        return list(worker.get("/churnwatch/at-risk/?limit=5").json()["accounts"])
    except Exception:  # not answering yet
        return []


def folded(worker: WorkerProcess) -> int:
    return int((worker.stats() or {}).get("events_folded", 0))


def test_worker_explains_a_listed_account(workers: WorkerFactory) -> None:
    # Many decliners and silent churners, so several accounts are clearly at risk when the data ends: with
    # the default mix one account was, barely (risk ~0.17), and on a loaded machine a batch cut that folded
    # a sparse event after its midnight's sweep instead of before left none listed (2026-12-03).
    config = SimulationConfig(seed=21, accounts=60, days=70, start=START, slow_disengage=0.25, silent=0.1)
    events = list(Simulation(config).events())
    workers.partitions = 1
    workers.extra_env["CHURNWATCH_EVALUATION_CLOCK"] = "event"
    settings = workers.settings()
    worker = workers.start()
    sent = asyncio.run(produce_live(settings, events, rate=2_500))
    # All folded (the event clock then stands still: no sweep changes the answer between the two requests).
    wait_until(lambda: folded(worker) >= sent - 50, timeout=180, what="events folded")
    wait_until(lambda: bool(listed(worker)), timeout=180, what="an account listed at risk")
    row = listed(worker)[0]
    account = row["account_id"]
    explained = worker.get(f"/churnwatch/accounts/{account}/").json()["explained"]
    for key in ("severity", "reasons", "plan", "mrr"):
        assert explained[key] == row[key], key
    assert explained["risk"] == pytest.approx(row["risk"], abs=1e-4)
    assert explained["episodes"][0]["episode_id"] == row["episode_id"]
    assert sum(day["activity"] for day in explained["daily"]) > 0
    done = subprocess.run(
        [sys.executable, "-m", "streams", "explain", account, "--worker", worker.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert account in done.stdout and row["reasons"][0][:30] in done.stdout
