"""Kafka connection options from settings, and creation of churnwatch's topics."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.errors import ConfigError, KafkaUnavailableError
from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka.ssl_cafile) if settings.kafka.ssl_cafile else None
    )
    if settings.kafka.ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka.ssl_certfile),
            str(settings.kafka.ssl_keyfile) if settings.kafka.ssl_keyfile else None,
        )
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap,
        "security_protocol": settings.kafka.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka.security_protocol.startswith("SASL"):
        assert settings.kafka.sasl_password is not None
        options["sasl_mechanism"] = settings.kafka.sasl_mechanism
        options["sasl_plain_username"] = settings.kafka.sasl_username
        options["sasl_plain_password"] = settings.kafka.sasl_password.get_secret_value()
    return options


def assigning_consumer(options: Mapping[str, Any], **extra: Any) -> AIOKafkaConsumer:
    """A consumer outside any group, reading the partitions it is assigned from where it seeks (not started).

    ``auto_offset_reset="earliest"``: with aiokafka's default "latest", the offset reset that ``assign()``
    starts can win over a ``seek`` or ``seek_to_beginning`` (seen beside a CPU hog).
    """
    return AIOKafkaConsumer(
        **options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **extra
    )


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The same security settings in the form faust's ``broker_credentials`` takes."""
    context = ssl_context(settings)
    if settings.kafka.security_protocol.startswith("SASL"):
        assert settings.kafka.sasl_password is not None
        return faust.SASLCredentials(
            username=settings.kafka.sasl_username,
            password=settings.kafka.sasl_password.get_secret_value(),
            mechanism=settings.kafka.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, timeout: float = 30
) -> list[TopicPartition]:
    """The partitions of ``topic``, waiting (bounded) for the metadata of a topic created a moment ago."""
    deadline = time.monotonic() + timeout
    partitions = consumer.partitions_for_topic(topic)
    while not partitions:
        if time.monotonic() > deadline:
            raise KafkaUnavailableError(f"topic {topic} has no partitions after {timeout:g} s")
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await asyncio.sleep(0.2)
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def ensure_topics(settings: Settings) -> None:
    """Create churnwatch's topics when missing; fail fast when existing ones are not co-partitioned."""
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **client_options(settings))
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise ConfigError(
            "CHURNWATCH_BOOTSTRAP_SERVERS", f"cannot reach Kafka at {settings.kafka.bootstrap}: {exc}"
        ) from None
    try:
        names = [*settings.topics.events.values(), settings.topics.alerts, settings.topics.deadletter]
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.topics.partitions, settings.topics.replication_factor)
            for name in names
            if name not in existing
        ]
        if settings.topics.feedback not in existing:
            # Answers to alerts, keyed by account and co-partitioned with it; compacted (docs/alerts.md).
            missing.append(
                NewTopic(
                    settings.topics.feedback,
                    settings.topics.partitions,
                    settings.topics.replication_factor,
                    topic_configs={"cleanup.policy": "compact"},
                )
            )
        if missing:
            try:
                await admin.create_topics(missing)
            except KafkaError as exc:
                # Another worker may have created them in the meantime; the check below decides.
                if "TopicAlreadyExists" not in type(exc).__name__:
                    raise KafkaUnavailableError(f"creating topics failed: {exc!r}") from None
        deadline = time.monotonic() + 30
        while True:
            # Alerts share partition numbers with the deliveries ledger, and the worker reads answers by the
            # partitions it owns: they must be co-partitioned too.
            described = await admin.describe_topics(
                [*settings.topics.events.values(), settings.topics.alerts, settings.topics.feedback]
            )
            # A just-created topic can briefly be described without partitions: wait for its metadata.
            if all(topic["partitions"] for topic in described) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        for topic in described:
            partitions = len(topic["partitions"])
            if partitions != settings.topics.partitions:
                raise ConfigError(
                    "CHURNWATCH_PARTITIONS",
                    f"topic {topic['topic']!r} has {partitions} partitions, "
                    f"settings say {settings.topics.partitions}; "
                    "event and alert topics must be co-partitioned with the state tables",
                )
    finally:
        await admin.close()
