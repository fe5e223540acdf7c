"""Shared fixtures: a real Kafka broker for the session and churnwatch worker processes against it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.dev import kafka_local
from tests.kafka_harness import KafkaForTests, WorkerFactory, free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaForTests]:
    """A real broker: ``CHURNWATCH_TEST_BOOTSTRAP`` if set, else a fresh embedded KRaft broker on loopback."""
    external = os.environ.get("CHURNWATCH_TEST_BOOTSTRAP")
    if external:
        yield KafkaForTests(bootstrap=external)
        return
    shared_jars = kafka_local.LocalBroker(REPO / ".kafka", 0)
    kafka_local.ensure_jars(shared_jars)
    home = tmp_path_factory.mktemp("kafka")
    (home / "libs").symlink_to(shared_jars.libs.resolve())
    broker = kafka_local.LocalBroker(home, free_port(pair=True))
    kafka_local.start(broker)
    try:
        yield KafkaForTests(bootstrap=broker.bootstrap, broker=broker)
    finally:
        kafka_local.stop(broker)


@pytest.fixture
def workers(kafka: KafkaForTests, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WorkerFactory]:
    """Start ``churnwatch worker`` processes with test-unique topics and group; all stopped at teardown."""
    factory = WorkerFactory(kafka, tmp_path, name=request.node.name)
    try:
        yield factory
    finally:
        factory.stop_all()
