"""The walking skeleton end to end on a real broker: events -> worker -> changelog-backed windows."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from detectors.windows import PAYMENT_FAILED, USAGE, AccountWindow, WindowConfig
from streams.dev.producer import route
from streams.events import parse_ts
from streams.live.ingest import BatchFolder
from streams.settings import Settings
from tests.kafka_harness import (
    WorkerFactory,
    WorkerProcess,
    metric_value,
    read_topic,
    run,
    simulated_lines,
    wait_until,
)

pytestmark = pytest.mark.kafka


def fold_offline(lines: list[bytes]) -> dict[str, dict[str, object]]:
    """What the windows must hold: the same events folded in file order without Kafka."""
    windows: dict[str, AccountWindow] = {}
    for line in lines:
        body = orjson.loads(line)
        window = windows.setdefault(body["account_id"], AccountWindow(WindowConfig()))
        ts_ms = parse_ts(body["ts"])
        if body["type"] == "usage":
            assert window.add_usage(ts_ms, body["event"], body.get("user_id"), body.get("count", 1))
        elif body["type"] == "support":
            assert window.add_support(ts_ms, body["kind"], body.get("priority"), body.get("score"))
        else:
            assert window.add_billing(ts_ms, body["kind"], body.get("mrr"), body.get("plan"))
    return {account: window.to_state() for account, window in windows.items()}


def test_windows_match_events_and_survive_restart(workers: WorkerFactory) -> None:
    lines = simulated_lines(accounts=25, days=14, seed=5)
    settings = workers.settings()
    expected = fold_offline(lines)
    assert len(expected) == 25

    worker = workers.start()
    assert workers.produce(route(settings, line) for line in lines) == len(lines)
    wait_until(
        lambda: (stats := worker.stats()) and stats["events_folded"] == len(lines),
        timeout=120,
        what=f"{len(lines)} events folded",
    )
    assert worker.stats()["deadletters"] == 0  # type: ignore[index]
    for account, state in expected.items():
        assert worker.account(account)["window"] == state, account  # type: ignore[index]

    # A new worker process starts with empty memory: all it knows comes from the changelog topic.
    worker.stop()
    restarted = workers.start()
    assert restarted.stats()["events_folded"] == 0  # type: ignore[index]  # offsets were committed
    for account, state in expected.items():
        assert restarted.account(account)["window"] == state, account  # type: ignore[index]

    # And it carries on from the recovered state.
    first = sorted(expected)[0]
    day_ts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    extra = orjson.dumps(
        {"type": "usage", "account_id": first, "ts": day_ts, "event": "report_exported", "count": 7}
    )
    workers.produce([route(settings, extra)])
    wait_until(lambda: restarted.stats()["events_folded"] == 1, timeout=30, what="extra event")  # type: ignore[index]
    window = AccountWindow.from_state(restarted.account(first)["window"], WindowConfig())  # type: ignore[index]
    recovered = AccountWindow.from_state(expected[first], WindowConfig())
    day = parse_ts(day_ts) // 86_400_000
    assert window.bucket(day)[USAGE] == recovered.bucket(day)[USAGE] + 7


def test_malformed_records_are_dead_lettered_and_neighbours_processed(workers: WorkerFactory) -> None:
    workers.extra_env["CHURNWATCH_MAX_EVENT_BYTES"] = "512"
    settings = workers.settings()
    now = datetime.now(UTC).replace(microsecond=0)

    def usage(account: str, ts: datetime, **extra: object) -> bytes:
        body = {
            "type": "usage",
            "account_id": account,
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "event": "page_viewed",
            "user_id": "u1",
            **extra,
        }
        return orjson.dumps(body)

    usage_topic = settings.topics.usage
    bad: list[tuple[str, bytes, bytes, str]] = [
        (usage_topic, b"good", b'{"type": "usage", "account_id": "good"', "invalid_json"),
        (usage_topic, b"good", b"[1, 2, 3]", "not_an_object"),
        (
            usage_topic,
            b"good",
            orjson.dumps({"type": "usage", "account_id": "good", "ts": 1795687200000}),
            "missing_field",
        ),
        (usage_topic, b"good", usage("good", now, count="3"), "wrong_type"),
        (usage_topic, b"good", orjson.dumps({"type": "pageview", "account_id": "good"}), "unknown_type"),
        (usage_topic, b"good", usage("good", now + timedelta(days=30)), "future_ts"),
        (usage_topic, b"good", usage("good", now, padding="x" * 600), "too_large"),
        (usage_topic, b"someone-else", usage("good", now, user_id="u2"), "key_mismatch"),
        (settings.topics.billing, b"good", usage("good", now, user_id="u3"), "wrong_topic"),
        (usage_topic, b"good", usage("good", now - timedelta(days=5)), "late"),
    ]
    good_before = [usage("good", now - timedelta(hours=h)) for h in (3, 2)]
    good_after = [usage("good", now - timedelta(hours=1)), usage("other", now)]
    records = [(usage_topic, b"good", line) for line in good_before]
    records += [(topic, key, value) for topic, key, value, _ in bad]
    records += [
        (usage_topic, line[36:41] if False else orjson.loads(line)["account_id"].encode(), line)
        for line in good_after
    ]

    worker = workers.start()
    workers.produce(records)
    dead = run(read_topic(workers.kafka.bootstrap, settings.topics.deadletter, expected=len(bad)))
    reasons = {bytes(rec.value): dict(rec.headers)["churnwatch.error.reason"].decode() for rec in dead}
    assert len(dead) == len(bad)
    for _, _, value, reason in bad:
        assert reasons[value] == reason, (value[:60], reason)
    for rec in dead:
        headers = dict(rec.headers)
        assert headers["churnwatch.source.topic"].decode() in (usage_topic, settings.topics.billing)
        assert headers["churnwatch.error.detail"]

    wait_until(lambda: worker.stats()["events_folded"] == 4, timeout=30, what="valid events folded")  # type: ignore[index]
    good = AccountWindow.from_state(worker.account("good")["window"], WindowConfig())  # type: ignore[index]
    assert sum(bucket[USAGE] for bucket in good.days.values()) == 3
    assert worker.account("other") is not None
    assert worker.process.poll() is None  # the worker kept running
    metrics = worker.get("/metrics").text
    assert 'churnwatch_deadletters_total{reason="late"} 1.0' in metrics
    assert 'churnwatch_events_consumed_total{outcome="ok",topic="usage"} 4.0' in metrics


def test_bad_configuration_fails_fast_naming_the_setting(workers: WorkerFactory, tmp_path: Path) -> None:
    env = workers.env(CHURNWATCH_PARTITIONS="0")
    result = subprocess.run(
        [sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "CHURNWATCH_PARTITIONS" in result.stderr

    from tests.kafka_harness import free_port

    env = workers.env(CHURNWATCH_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    result = subprocess.run(
        [sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "CHURNWATCH_BOOTSTRAP_SERVERS" in result.stderr


def test_folder_never_counts_a_redelivered_record_twice() -> None:
    folder = BatchFolder(
        window_config=WindowConfig(),
        max_event_bytes=1000,
        max_future_skew_ms=86_400_000,
        clock=lambda: 1_795_687_200_000,
    )
    from streams.live.ingest import AccountState, RawRecord

    line = b'{"type":"usage","account_id":"a","ts":1795687200000,"event":"x","count":2}'
    stored: dict[bytes, bytes] = {}
    for _ in range(2):  # the same offset delivered twice (a crash before the commit)
        result = folder.fold([RawRecord("usage", b"a", line, "t", 0, 41)], stored.get)
        for key, state in result.changed.items():
            stored[key] = state.to_bytes()
    assert result.skipped_duplicates == 1
    window = AccountState.from_bytes(stored[b"a"], WindowConfig()).window
    assert window.bucket(1_795_687_200_000 // 86_400_000)[USAGE] == 2


def billing(settings: Settings, kind: str, hours_ago: int, **extra: object) -> tuple[str, bytes, bytes]:
    """A billing event of account ``retry``, as (topic, key, value) to produce."""
    now = datetime.now(UTC).replace(microsecond=0)
    ts = (now - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")
    body = {"type": "billing", "account_id": "retry", "ts": ts, "kind": kind, **extra}
    return settings.topics.billing, b"retry", orjson.dumps(body)


def payments_failed(worker: WorkerProcess) -> int:
    window = AccountWindow.from_state(worker.account("retry")["window"], WindowConfig())  # type: ignore[index]
    return window.total(PAYMENT_FAILED, 0, 10**9)


def test_a_producer_retry_is_folded_once(workers: WorkerFactory) -> None:
    settings = workers.settings()
    failed = billing(settings, "payment_failed", 3)
    with_id = billing(settings, "payment_failed", 2, event_id="inv-7/attempt-1")
    restamped = billing(
        settings, "payment_failed", 1, event_id="inv-7/attempt-1"
    )  # the retry re-stamped ``ts``
    worker = workers.start()
    workers.produce([failed, failed, with_id, restamped, billing(settings, "payment_succeeded", 1)])
    wait_until(lambda: worker.stats()["events_folded"] == 3, timeout=60, what="3 events folded")  # type: ignore[index]
    wait_until(
        lambda: metric_value(worker.get("/metrics").text, "churnwatch_events_deduplicated_total") == 2,
        timeout=30,
        what="2 duplicates counted",
    )
    assert payments_failed(worker) == 2
    assert worker.stats()["deadletters"] == 0  # type: ignore[index]


def test_a_producer_retry_after_a_restart_is_folded_once(workers: WorkerFactory) -> None:
    """The first copy was folded and checkpointed before the worker stopped; the retry arrives after."""
    settings = workers.settings()
    worker = workers.start()
    workers.produce([billing(settings, "payment_failed", 2, event_id="inv-9/attempt-1")])
    wait_until(lambda: worker.stats()["events_folded"] == 1, timeout=60, what="the first copy folded")  # type: ignore[index]
    worker.stop()

    restarted = workers.start()
    retry = billing(settings, "payment_failed", 1, event_id="inv-9/attempt-1")
    workers.produce([retry, billing(settings, "payment_succeeded", 1)])
    wait_until(
        lambda: metric_value(restarted.get("/metrics").text, "churnwatch_events_deduplicated_total") == 1,
        timeout=60,
        what="the retry counted as a duplicate",
    )
    wait_until(lambda: restarted.stats()["events_folded"] == 1, timeout=30, what="the next event folded")  # type: ignore[index]
    assert payments_failed(restarted) == 1
