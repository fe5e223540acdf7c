"""Run a churnwatch worker: make sure Kafka and the topics exist, then run the Faust worker until stopped."""

from __future__ import annotations

import asyncio
import logging

import structlog

from streams.dev import kafka_local
from streams.live.app import Churnwatch
from streams.live.kafka_client import ensure_topics
from streams.live.lifecycle import BoundedWorker, ExitDeadline
from streams.settings import Settings

log = structlog.get_logger(__name__)


def local_broker(settings: Settings) -> kafka_local.LocalBroker:
    return kafka_local.LocalBroker(settings.kafka.local_home.resolve(), settings.kafka.local_port)


def prepare_kafka(settings: Settings, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Start the embedded broker when no external Kafka is configured, then create the topics."""
    quiet_kafka_client_logs()
    if settings.kafka.embedded:
        kafka_local.start(local_broker(settings))  # asyncio.run inside: it unsets the current event loop
    if loop is None:
        asyncio.run(ensure_topics(settings))
    else:
        # The worker's loop is the current one again: Faust and mode objects built next bind to it (else the
        # stop waits on futures of another loop that never runs, until the shutdown deadline).
        asyncio.set_event_loop(loop)
        loop.run_until_complete(ensure_topics(settings))


def quiet_kafka_client_logs() -> None:
    """aiokafka logs every refused connection and missing-topic retry as an error: keep real errors only."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def run_worker(settings: Settings) -> None:
    """Blocks until SIGINT/SIGTERM; several processes with the same settings form one consumer group.

    The stop is bounded (``shutdown_timeout_seconds``; a second signal exits at once) and an error the worker
    cannot handle exits non-zero (:mod:`streams.live.lifecycle`).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    prepare_kafka(settings, loop)
    churnwatch = Churnwatch(settings)
    churnwatch.metrics.worker_up.set(1)
    log.info(
        "worker.starting",
        bootstrap=settings.kafka.bootstrap,
        app_id=settings.topics.app_id,
        web_port=settings.worker.web_port,
    )
    worker = BoundedWorker(
        churnwatch.app,
        loop=loop,
        loglevel=settings.worker.log_level.upper(),
        quiet=True,
        deadline=ExitDeadline(settings.worker.shutdown_timeout_seconds),
    )
    # Faust's start-up spinner sets the root logger to DEBUG so it can spin on every record: every
    # logger.debug() in Faust and aiokafka then builds a LogRecord (one per changelog write, for example).
    worker.spinner = None
    worker.execute_from_commandline()
