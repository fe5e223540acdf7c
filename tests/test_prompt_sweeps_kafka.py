"""A wall-clock worker whose timer never fires in the test still evaluates accounts: the support and billing
events of a batch prompt a sweep (``CHURNWATCH_SWEEP_PROMPT_SECONDS``, ``streams/live/prompt_sweeps.py``).
Real broker, real worker process."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from streams.dev.producer import route
from tests.kafka_harness import WorkerFactory, WorkerProcess, metric_value, simulated_lines, wait_until

pytestmark = pytest.mark.kafka


def counter(worker: WorkerProcess, name: str, **labels: str) -> float:
    return metric_value(worker.get("/metrics").text, name, **labels) or 0.0


def swept(worker: WorkerProcess) -> float:
    """Accounts evaluated by every sweep so far."""
    name = "churnwatch_accounts_swept_total"
    return sum(counter(worker, name, scope=scope) for scope in ("all", "changed"))


def folded(worker: WorkerProcess) -> int:
    return int((worker.stats() or {}).get("events_folded", 0))


def test_a_support_ticket_is_swept_without_waiting_for_the_timer(workers: WorkerFactory) -> None:
    workers.extra_env["CHURNWATCH_SWEEP_INTERVAL_SECONDS"] = "3600"  # the timer: not within this test
    settings = workers.settings()
    lines = simulated_lines(accounts=20, days=30, seed=5)
    worker = workers.start()
    workers.produce(route(settings, line) for line in lines)
    wait_until(lambda: folded(worker) == len(lines), timeout=120, what="the history folded")
    # Its support and billing topics may have been read before its usage: what usage alone reached since the
    # last prompted sweep waits (for the timer, or the next prompt).
    prompted, evaluated = counter(worker, "churnwatch_prompt_sweeps_total"), swept(worker)

    events = [orjson.loads(line) for line in lines]
    canceled = {e["account_id"] for e in events if e.get("kind") == "subscription_canceled"}
    account_id = next(e["account_id"] for e in reversed(events) if e["account_id"] not in canceled)
    now = datetime.now(UTC).isoformat()
    ticket = {"type": "support", "account_id": account_id, "ts": now, "kind": "escalated"}
    workers.produce([route(settings, orjson.dumps(ticket))])
    wait_until(lambda: swept(worker) > evaluated, timeout=60, what="the ticket's account evaluated")
    assert counter(worker, "churnwatch_prompt_sweeps_total") > prompted
