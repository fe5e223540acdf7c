"""How fast a worker stops, dies on a fatal error, and notices and rides out a broker outage (issue #12).

On a private embedded broker, with the test harness's worker processes:

* SIGTERM of an idle worker, and of a worker whose alert sink is down (a delivery batch retrying): seconds to
  exit and the exit code;
* a fatal error (an account state in the changelog that does not decode): seconds from the crash to the exit;
* the broker stopped for ``--outage`` seconds (default 120) under a trickle of events: seconds until
  ``/churnwatch/ready/`` says 503 ``not_reading``, whether the worker stayed live and running, seconds from
  the broker's restart to ready again, and how soon every event produced before and after the outage was
  folded (each account's window equal to the offline fold).

    .venv/bin/python benchmarks/health_timings.py [--outage 120]

Figures go to docs/observability.md ("Health: measured").
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.dev import kafka_local
from tests.http_recorder import HTTPRecorder
from tests.kafka_harness import (
    KafkaForTests,
    WorkerFactory,
    WorkerProcess,
    make_alert,
    start_private_broker,
    wait_until,
)
from tests.test_faults import (
    configure_patient_webhook,
    fold_offline,
    produce_events,
    simulated_events,
    wait_for_windows,
    write_outbox,
)
from tests.test_health_kafka import corrupt_account_state, health


def timed_exit(worker: WorkerProcess, signum: signal.Signals | None, timeout: float = 120) -> str:
    started = time.monotonic()
    if signum is not None:
        worker.process.send_signal(signum)
    code = worker.process.wait(timeout)
    return f"exit {code} after {time.monotonic() - started:.1f} s"


def sigterm(factory: WorkerFactory) -> None:
    for run in range(3):
        worker = factory.start()
        print(f"SIGTERM, idle worker (run {run + 1}): {timed_exit(worker, signal.SIGTERM)}")
    with HTTPRecorder([503] * 1_000_000) as crm:
        configure_patient_webhook(factory, crm, max_delay_s="1")
        worker = factory.start()
        write_outbox(factory, [make_alert(f"bench-{i:02d}") for i in range(5)])
        crm.wait_for_sync(3, timeout=60)
        print(f"SIGTERM, sink down, delivery retrying: {timed_exit(worker, signal.SIGTERM)}")
    factory.extra_env.clear()


def fatal(factory: WorkerFactory) -> None:
    events = simulated_events(accounts=3, days=3, seed=5)
    account = events[0]["account_id"]
    corrupt_account_state(factory, account)
    worker = factory.start()
    produce_events(factory, [e for e in events if e["account_id"] == account][:5])
    wait_until(lambda: "Crashed reason" in worker.log(), timeout=90, what="the crash")
    print(f"fatal error (corrupt stored state): {timed_exit(worker, None)} from the crash")


def outage(factory: WorkerFactory, broker: kafka_local.LocalBroker, seconds: float) -> None:
    events = simulated_events(accounts=30, days=8, seed=91)
    third = len(events) // 3
    worker = factory.start()
    produce_events(factory, events[:third])
    wait_until(lambda: (worker.stats() or {}).get("events_folded") == third, timeout=120, what="folded")
    stopped = time.monotonic()
    assert kafka_local.stop(broker)
    wait_until(lambda: health(worker, "/churnwatch/ready/") == 503, timeout=120, what="not ready")
    not_ready_s = time.monotonic() - stopped
    reason = worker.get("/churnwatch/ready/").json()["reason"]
    live = []
    while time.monotonic() - stopped < seconds:
        live.append(health(worker, "/churnwatch/live/") == 200 and worker.process.poll() is None)
        time.sleep(5)  # sampling the outage, not synchronising on it
    kafka_local.start(broker)
    back = time.monotonic()
    wait_until(lambda: health(worker, "/churnwatch/ready/") == 200, timeout=300, what="ready again")
    ready_again_s = time.monotonic() - back
    produce_events(factory, events[third:])
    caught_up_s = wait_for_windows(worker, fold_offline(events), timeout=300)
    print(
        f"broker down {back - stopped:.0f} s: not ready ({reason}) {not_ready_s:.1f} s after the stop; "
        f"live and running in {sum(live)}/{len(live)} samples; ready again {ready_again_s:.1f} s after the "
        f"broker restarted; all {len(events)} events folded {caught_up_s:.1f} s after the last was produced"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=120.0, help="seconds the broker stays down")
    args = parser.parse_args()
    with TemporaryDirectory() as directory:
        home = Path(directory)
        broker = start_private_broker(home / "kafka")
        kafka = KafkaForTests(bootstrap=broker.bootstrap, broker=broker)
        factories = [WorkerFactory(kafka, home / name, name=name) for name in ("stop", "fatal", "outage")]
        for factory in factories:
            factory.directory.mkdir()
        try:
            sigterm(factories[0])
            factories[1].start().stop()  # topics and changelog exist
            fatal(factories[1])
            outage(factories[2], broker, args.outage)
        finally:
            for factory in factories:
                factory.stop_all()
            kafka_local.stop(broker)


if __name__ == "__main__":
    main()
