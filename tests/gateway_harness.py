"""Helpers for the ingest gateway tests: `churnwatch ingest` processes on the real broker, signing helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.kafka_harness import (
    KafkaForTests,
    WorkerFactory,
    free_port,
    metric_value,
    read_all,
    run,
    wait_until,
)

WRITE_KEY = "wk_test_0123456789"
STRIPE_SECRET = "whsec_test_stripe_secret_abcdef"
ZENDESK_SECRET = "zendesk-signing-secret-xyz"
INTERCOM_SECRET = "intercom-client-secret-123"
SECRETS = (WRITE_KEY, STRIPE_SECRET, ZENDESK_SECRET, INTERCOM_SECRET)


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, path: str, body: bytes | Any, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.post(f"{self.url}{path}", content=content, headers=headers, timeout=60)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.get("/metrics").text, name, **labels) or 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, *, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@dataclass
class GatewayFactory:
    """Starts `churnwatch ingest` on the unique topics of ``workers``; stops them at teardown."""

    workers: WorkerFactory
    started: list[GatewayProcess] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        return self.workers.env(
            CHURNWATCH_TOPIC_IDENTITIES=f"{self.workers.prefix}.identities",
            CHURNWATCH_INGEST_WRITE_KEY=WRITE_KEY,
            CHURNWATCH_STRIPE_WEBHOOK_SECRET=STRIPE_SECRET,
            CHURNWATCH_ZENDESK_WEBHOOK_SECRET=ZENDESK_SECRET,
            CHURNWATCH_INTERCOM_CLIENT_SECRET=INTERCOM_SECRET,
            **overrides,
        )

    def start(self, *, drop: tuple[str, ...] = (), **env: str) -> GatewayProcess:
        port = free_port()
        log_path = self.workers.directory / f"gateway-{len(self.started)}.log"
        environment = self.env(CHURNWATCH_INGEST_LISTEN=f"127.0.0.1:{port}", **env)
        for name in drop:
            environment.pop(name, None)
        process = subprocess.Popen(
            [sys.executable, "-m", "streams", "ingest"],
            env=environment,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        gateway = GatewayProcess(process, port, log_path)
        self.started.append(gateway)

        def serving() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"gateway exited with {process.returncode}:\n{gateway.log()[-3000:]}")
            try:
                return gateway.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(serving, timeout=90, what="gateway serving /healthz")
        return gateway

    def stop_all(self) -> None:
        for gateway in self.started:
            gateway.stop()

    def topic(self, role: str) -> str:
        return f"{self.workers.prefix}.{role}"

    def read(self, role: str) -> list[Any]:
        return run(read_all(self.workers.kafka.bootstrap, self.topic(role)))

    def values(self, role: str) -> list[dict[str, Any]]:
        return [orjson.loads(bytes(record.value)) for record in self.read(role)]


@contextmanager
def gateway_factory(
    kafka: KafkaForTests, directory: Path, name: str, **extra_env: str
) -> Iterator[GatewayFactory]:
    """Gateways (and workers) on topics of their own under ``name``; every process stopped at the end.

    ``extra_env`` values may name ``{prefix}``, the unique topic prefix (e.g. ``"{prefix}.feedback"``).
    """
    workers = WorkerFactory(kafka, directory, name=name)
    for key, value in extra_env.items():
        workers.extra_env[key] = value.format(prefix=workers.prefix)
    gateways = GatewayFactory(workers)
    try:
        yield gateways
    finally:
        gateways.stop_all()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def of_account(factory: GatewayFactory, role: str, account: str) -> list[dict[str, Any]]:
    return [value for value in factory.values(role) if value.get("account_id") == account]


def wait_records(factory: GatewayFactory, role: str, account: str, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        found = of_account(factory, role, account)
        return found if len(found) >= count else None

    return wait_until(enough, timeout=60, what=f"{count} {role} records of {account}")


def basic(key: str = WRITE_KEY) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def zendesk_headers(
    body: bytes, *, secret: str = ZENDESK_SECRET, at: datetime | None = None
) -> dict[str, str]:
    timestamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def intercom_headers(body: bytes, *, secret: str = INTERCOM_SECRET) -> dict[str, str]:
    signature = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return {"X-Hub-Signature": signature, "Content-Type": "application/json"}
