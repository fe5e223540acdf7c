"""`churnwatch backfill` on the real broker: a later worker knows history and alerts on live data only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from detectors.monitor import AccountDetectorState
from streams.dev.producer import produce_live, send_all
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine.state import decode_detector
from streams.gateway.identities import ensure_identity_topic
from streams.live.ingest import AccountState
from streams.offline.backfill_store import changelog_topic
from streams.offline.replay import run_replay
from streams.settings import Settings
from tests.gateway_harness import GatewayFactory, basic
from tests.kafka_harness import (
    WorkerFactory,
    WorkerProcess,
    end_offsets,
    latest_by_key,
    read_all,
    run,
    wait_until,
)
from tests.test_cli_errors import refused

pytestmark = pytest.mark.kafka

DAY_MS = 86_400_000
START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday, as in test_detection_live (no simulated holidays)
HISTORY_DAYS = 49


def ts_ms(event: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(event["ts"]).timestamp() * 1000)


def topics(bootstrap: str) -> set[str]:
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def backfill(workers: WorkerFactory, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", "backfill", *args],
        env=workers.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def changelog(settings: Settings, bootstrap: str) -> dict[bytes, bytes | None]:
    return latest_by_key(run(read_all(bootstrap, changelog_topic(settings))))


def folded(worker: WorkerProcess) -> int:
    return int((worker.stats() or {}).get("events_folded", 0))


def group_members(settings: Settings) -> int:
    async def describe() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await admin.start()
        try:
            responses = await admin.describe_consumer_groups([settings.topics.app_id])
            return sum(len(group[5]) for response in responses for group in response.groups)
        finally:
            await admin.close()

    return asyncio.run(describe())


def alerts(settings: Settings, bootstrap: str) -> list[dict[str, Any]]:
    return [orjson.loads(record.value) for record in run(read_all(bootstrap, settings.topics.alerts))]


def test_backfilled_history_is_known_and_only_live_data_alerts(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    events = list(Simulation(SimulationConfig(seed=21, accounts=60, days=70, start=START)).events())
    boundary_ms = int((START + timedelta(days=HISTORY_DAYS)).timestamp() * 1000)
    history = [e for e in events if ts_ms(e) < boundary_ms]
    live = [e for e in events if ts_ms(e) >= boundary_ms]
    history_file = tmp_path / "history.jsonl"
    history_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in history))
    offline = run_replay(orjson.dumps(e) for e in history)
    carried = {a: s.episode.episode_id for a, s in offline.states.items() if s.episode is not None}
    assert offline.alerts and carried  # history alerted, and some episodes are still open at its end

    workers.partitions = 2
    workers.extra_env["CHURNWATCH_EVALUATION_CLOCK"] = "event"
    settings = workers.settings()
    bootstrap = workers.kafka.bootstrap

    done = backfill(workers, str(history_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {len(offline.windows)} account states" in done.stdout, done.stdout
    assert f"{len(offline.alerts)} alerts history raised were not sent" in done.stdout, done.stdout
    rows = changelog(settings, bootstrap)
    ends = run(end_offsets(bootstrap, changelog_topic(settings)))
    # Every account in the partition its events are produced to, as the worker stores it.
    partitioner = DefaultPartitioner()
    records = run(read_all(bootstrap, changelog_topic(settings)))
    for record in records:
        if not record.key.startswith(b"\x00"):
            state = AccountState.from_bytes(record.value, offline.window_config)
            assert record.partition == state.partition == partitioner(record.key, [0, 1], [0, 1])
    # Twice: nothing written the second time, the changelog as it was.
    again = backfill(workers, str(history_file))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"wrote 0 account states; {len(offline.windows)} already there" in again.stdout, again.stdout
    assert run(end_offsets(bootstrap, changelog_topic(settings))) == ends
    assert changelog(settings, bootstrap) == rows

    worker = workers.start()
    wait_until(
        lambda: (worker.stats() or {}).get("accounts") == len(offline.windows), timeout=60, what="accounts"
    )
    for account, window in offline.windows.items():
        body = worker.account(account)
        assert body is not None and body["window"] == orjson.loads(orjson.dumps(window.to_state())), account
        assert body["applied_offsets"] == [-1, -1, -1]
        stored = AccountState.from_bytes(rows[account.encode()] or b"", offline.window_config)
        assert stored.detector is not None
        detector = decode_detector(stored.detector)
        assert detector == offline.states[account].to_state()
        assert AccountDetectorState.from_state(detector).episode == offline.states[account].episode
    # A worker running: the backfill refuses (it would be overwritten), in one line.
    refused(backfill(workers, str(history_file)), "running", "stop them")

    # The first live day and the next day's first events: the worker sweeps its first live midnight.
    first_days = [e for e in live if ts_ms(e) < boundary_ms + 2 * DAY_MS]
    sent = asyncio.run(produce_live(settings, first_days, rate=2_500))
    wait_until(lambda: folded(worker) >= sent - 20, timeout=120, what="first live days folded")
    page = wait_until(
        lambda: worker.get("/churnwatch/at-risk/?limit=1000").json()["accounts"], timeout=30, what="at-risk"
    )
    listed = {row["account_id"]: row["episode_id"] for row in page}
    still_open = {a: e for a, e in listed.items() if a in carried}
    assert still_open and all(carried[a] == e for a, e in still_open.items()), (listed, carried)

    rest = [e for e in live if ts_ms(e) >= boundary_ms + 2 * DAY_MS]
    sent += asyncio.run(produce_live(settings, rest, rate=2_500))
    wait_until(lambda: folded(worker) >= sent - 50, timeout=180, what="live events folded")
    raised = wait_until(lambda: alerts(settings, bootstrap), timeout=60, what="a live alert")
    for alert in raised:
        # The first live midnight or later: the backfill judged the days its history showed complete; its
        # last day is complete only when live usage of the next one arrives (as for a worker that read it).
        assert alert["event_ts_ms"] >= boundary_ms, alert
        opened_ms = int(alert["episode_id"].rsplit(":", 1)[1])
        # An episode of history only carries on (escalated, resolved): it is never announced again.
        assert opened_ms >= boundary_ms or (
            alert["transition"] != "opened" and alert["account_id"] in carried
        )

    # After the worker ran: a backfill writes nothing over what the worker now holds.
    worker.stop()
    wait_until(lambda: group_members(settings) == 0, timeout=60, what="the worker left its group")
    before = changelog(settings, bootstrap)
    ends = run(end_offsets(bootstrap, changelog_topic(settings)))
    after = backfill(workers, str(history_file))
    assert after.returncode == 0, after.stdout + after.stderr
    assert "wrote 0 account states" in after.stdout and "kept" in after.stdout, after.stdout
    assert run(end_offsets(bootstrap, changelog_topic(settings))) == ends
    assert changelog(settings, bootstrap) == before


def test_backfill_of_a_file_without_events_is_refused_in_one_line(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"type": "usage"}\nnot json\n')
    refused(backfill(workers, str(junk)), "junk.jsonl", "held no valid event", "invalid_json")
    assert changelog_topic(workers.settings()) not in topics(workers.kafka.bootstrap)  # nothing written


def test_live_from_end_starts_the_worker_after_what_the_topics_already_hold(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    """History both in a file and in the topics: `--live-from end` keeps the worker from folding it twice."""
    events = list(Simulation(SimulationConfig(seed=5, accounts=12, days=20, start=START)).events())
    history_file = tmp_path / "history.jsonl"
    history_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    workers.partitions = 2
    settings = workers.settings()
    dry = backfill(workers, "--dry-run", str(history_file))
    assert dry.returncode == 0 and "would write 12 account states" in dry.stdout, dry.stdout + dry.stderr
    assert changelog_topic(settings) not in topics(workers.kafka.bootstrap)  # a dry run writes nothing
    done = backfill(workers, str(history_file))  # creates the topics: produce the same history into them
    assert done.returncode == 0, done.stdout + done.stderr
    in_topics = asyncio.run(produce_live(settings, events, rate=None))
    # Only partitions the worker never checkpointed get a position: a first run without it has written none.
    done = backfill(workers, "--live-from", "end", str(history_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "recorded the event topics' ends as where the worker starts reading, for 2 partitions" in done.stdout
    )
    positions = {
        key: orjson.loads(value or b"")
        for key, value in changelog(settings, workers.kafka.bootstrap).items()
        if key.startswith(b"\x00positions/")
    }
    ends = {
        topic: run(end_offsets(workers.kafka.bootstrap, topic)) for topic in settings.topics.events.values()
    }
    assert sum(sum(offsets.values()) for offsets in ends.values()) == in_topics
    assert positions == {
        b"\x00positions/%d" % p: {topic: ends[topic][p] for topic in settings.topics.events.values()}
        for p in (0, 1)
    }

    worker = workers.start()
    later = {**events[-1], "ts": events[-1]["ts"], "event_id": "after-the-backfill"}
    asyncio.run(produce_live(settings, [later], rate=None))
    wait_until(lambda: folded(worker) >= 1, timeout=60, what="the new event folded")
    stats = worker.stats() or {}
    assert stats["events_folded"] == 1 and stats["deadletters"] == 0, stats  # not the history again


def test_a_segment_export_teaches_the_gateway_who_belongs_to_which_account(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    """After a Segment backfill a live `track` without `context.groupId` finds the account of its user."""
    gateways = GatewayFactory(workers)
    export = tmp_path / "segment.jsonl"
    messages = [
        {"type": "group", "userId": "u1", "groupId": "acme", "timestamp": "2026-03-01T09:00:00Z"},
        {"type": "track", "userId": "u1", "event": "login", "timestamp": "2026-03-01T10:00:00Z"},
        {"type": "group", "userId": "u2", "groupId": "globex", "timestamp": "2026-03-01T09:00:00Z"},
    ]
    export.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    # The gateway has since seen u2 grouped into another account live: that newer assignment stays.
    env = gateways.env()
    settings = workers.settings(topic_identities=gateways.topic("identities"))
    run(ensure_identity_topic(settings))
    run(send_all(settings, [(settings.topics.identities, b"u2", b"initech")]))
    done = subprocess.run(
        [sys.executable, "-m", "streams", "backfill", "--format", "segment", str(export)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "taught the gateway 1 user -> account assignments (1 users it already maps" in done.stdout
    try:
        gateway = gateways.start()
        for user in ("u1", "u2"):
            track = {"type": "track", "userId": user, "event": "search", "messageId": f"live-{user}"}
            response = gateway.post("/v1/track", track, Authorization=basic())
            assert response.status_code == 200 and response.json()["events"] == 1, response.text

        def live_tracks() -> dict[str, str] | None:
            found = {
                v["user_id"]: v["account_id"] for v in gateways.values("usage") if v["event"] == "search"
            }
            return found if len(found) == 2 else None

        accounts = wait_until(live_tracks, timeout=60, what="both live tracks")
        assert accounts == {"u1": "acme", "u2": "initech"}
    finally:
        gateways.stop_all()
