"""Deliver alerts from the outbox (the alerts topic) to every configured sink, once per idempotency key.

The detection agent writes each alert to the alerts topic first: once there it is durable. The notifier
reads that topic and, for each alert, asks the *ledger* which sinks have already handled its idempotency key
(delivered, dead-lettered or snoozed). It delivers only to the rest, and records each sink's outcome in the
ledger as soon as that sink is done, so a restart or rebalance does not notify anyone twice. The ledger is a
changelog-backed table owned by the Faust app; this module only sees load/store callables.

The one window left: a crash after a sink accepted a request but before its ledger record reached Kafka
re-sends that request's alerts (one alert, or one Slack digest) to that sink after restart. Webhook receivers
dedupe on ``webhook-id`` (the idempotency key); Slack cannot, and the window is one request long.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors.alerts import Alert
from streams.live.holdout import held_out
from streams.sinks import AlertOutcome, DeliveryOutcome, RetryPolicy, Sink, deliver

SNOOZE_PREFIX = "snooze:"

Deliver = Callable[[Sink, Sequence[Alert], RetryPolicy], Awaitable[DeliveryOutcome]]


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


@dataclass(slots=True)
class LedgerEntry:
    """What happened to one idempotency key: per sink, its :class:`AlertOutcome`.

    Snoozes live in the same ledger under ``snooze:<account>`` keys, with ``snoozed_until_ms`` set.
    """

    partition: int
    first_seen_ms: int
    sinks: dict[str, AlertOutcome] = field(default_factory=dict)
    snoozed_until_ms: int | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {"p": self.partition, "t": self.first_seen_ms, "s": self.sinks, "u": self.snoozed_until_ms}
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> LedgerEntry:
        body = orjson.loads(raw)
        sinks = {name: AlertOutcome(outcome) for name, outcome in body["s"].items()}
        return cls(body["p"], body["t"], sinks, body.get("u"))


@dataclass(frozen=True, slots=True)
class FailedAlert:
    """An alert (or a record that is no alert) to park in the dead-letter topic, with why."""

    record: OutboxRecord
    reason: str
    sink: str | None = None


@dataclass(slots=True)
class NotifyResult:
    delivered: dict[str, int] = field(default_factory=dict)  # sink -> alerts accepted
    duplicates: int = 0
    snoozed: int = 0
    held_out: int = 0
    failed: list[FailedAlert] = field(default_factory=list)


def snooze_record(account_id: str, until_ms: int) -> bytes:
    """The outbox record snoozing an account's alerts until ``until_ms`` (``churnwatch alerts snooze``)."""
    return orjson.dumps({"type": "snooze", "account_id": account_id, "until_ms": until_ms})


class Notifier:
    """Fan alerts out to sinks with retries, deduplicated through the ledger.

    Parameters
    ----------
    sinks
        Configured sinks; an alert is handled when each of them delivered or dead-lettered it.
    policy
        Retry policy for every sink.
    load, store
        Read / write a ledger entry by key (``store`` must make it durable before returning, e.g. write to
        the changelog and flush the producer).
    clock
        Epoch milliseconds.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        policy: RetryPolicy,
        *,
        load: Callable[[bytes], bytes | None],
        store: Callable[[dict[bytes, LedgerEntry]], Awaitable[None]],
        clock: Callable[[], int],
        send: Deliver | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.policy = policy
        self.load = load
        self.store = store
        self.clock = clock
        self.send: Deliver = send or (lambda sink, alerts, policy: deliver(sink, alerts, policy))

    def _entry(self, key: bytes, partition: int, cache: dict[bytes, LedgerEntry]) -> LedgerEntry:
        entry = cache.get(key)
        if entry is None:
            raw = self.load(key)
            entry = LedgerEntry.from_bytes(raw) if raw is not None else LedgerEntry(partition, self.clock())
            cache[key] = entry
        return entry

    def _snoozed_until(self, account_id: str, cache: dict[bytes, LedgerEntry]) -> int | None:
        key = f"{SNOOZE_PREFIX}{account_id}".encode()
        entry = cache.get(key)
        if entry is None:
            raw = self.load(key)
            entry = LedgerEntry.from_bytes(raw) if raw is not None else None
        return entry.snoozed_until_ms if entry is not None else None

    async def handle(self, records: Sequence[OutboxRecord]) -> NotifyResult:
        result = NotifyResult()
        entries: dict[bytes, LedgerEntry] = {}
        pending: dict[str, list[tuple[bytes, Alert, OutboxRecord]]] = {sink.name: [] for sink in self.sinks}
        for record in records:
            parsed = self._parse(record, result, entries)
            if parsed is None:
                continue
            key, alert = parsed
            entry = self._entry(key, record.partition, entries)
            todo = [sink.name for sink in self.sinks if sink.name not in entry.sinks]
            if not todo:
                result.duplicates += 1
                continue
            if held_out(alert):  # a holdout account (streams/live/holdout.py): recorded, never delivered
                for name in todo:
                    entry.sinks[name] = AlertOutcome.HELD_OUT
                result.held_out += 1
                continue
            snoozed_until = self._snoozed_until(alert.account_id, entries)
            if snoozed_until is not None and alert.event_ts_ms < snoozed_until:
                for name in todo:
                    entry.sinks[name] = AlertOutcome.SNOOZED
                result.snoozed += 1
                continue
            for name in todo:
                if all(queued_key != key for queued_key, _, _ in pending[name]):
                    pending[name].append((key, alert, record))
        if entries:
            await self.store(entries)
        for sink in self.sinks:
            queue = {alert.idempotency_key: (key, record) for key, alert, record in pending[sink.name]}
            if not queue:
                continue
            # One request at a time, each recorded as soon as the receiver accepted it: a crash re-sends at
            # most the request in flight, not the whole batch.
            for request in sink.requests([alert for _, alert, _ in pending[sink.name]]):
                outcome = await self.send(sink, request, self.policy)
                failed = {alert.idempotency_key for alert in outcome.undelivered}
                changed: dict[bytes, LedgerEntry] = {}
                for alert in request:
                    key, record = queue[alert.idempotency_key]
                    entry = entries[key]
                    if alert.idempotency_key in failed:
                        entry.sinks[sink.name] = AlertOutcome.DEAD_LETTERED
                        result.failed.append(
                            FailedAlert(record, outcome.reason or "undeliverable", sink.name)
                        )
                    else:
                        entry.sinks[sink.name] = AlertOutcome.DELIVERED
                        result.delivered[sink.name] = result.delivered.get(sink.name, 0) + 1
                    changed[key] = entry
                await self.store(changed)
        return result

    def _parse(
        self, record: OutboxRecord, result: NotifyResult, entries: dict[bytes, LedgerEntry]
    ) -> tuple[bytes, Alert] | None:
        try:
            body: Any = orjson.loads(record.value or b"")
            if body.get("type") == "snooze":
                key = f"{SNOOZE_PREFIX}{body['account_id']}".encode()
                entries[key] = LedgerEntry(
                    record.partition, self.clock(), snoozed_until_ms=int(body["until_ms"])
                )
                return None
            alert = Alert.from_dict(body)
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            result.failed.append(FailedAlert(record, f"invalid_alert: {type(exc).__name__}"))
            return None
        return alert.idempotency_key.encode(), alert
