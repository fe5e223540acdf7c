"""Retrying delivery to a sink: exponential backoff with jitter, ``Retry-After``, a budget, and rate limiting.

:func:`deliver` never raises for a delivery failure: it returns a :class:`DeliveryOutcome` that is either
*delivered* or *dead-lettered* (with the reason, attempt count and the alerts that did not get through), so
the notifier can commit its Kafka offsets either way and park dead letters. Sleeping, the clock and the
jitter's random source are injectable so tests run in virtual time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import structlog

from detectors.alerts import Alert
from streams.errors import ConfigError
from streams.sinks.base import PermanentDeliveryError, RetryableDeliveryError, Sink

log = structlog.get_logger(__name__)

__all__ = ["AlertOutcome", "DeliveryOutcome", "RateLimiter", "RetryAttempt", "RetryPolicy", "deliver"]

Sleep = Callable[[float], Awaitable[object]]
Clock = Callable[[], float]


class AlertOutcome(StrEnum):
    """What became of an alert at one sink: the delivery ledger's record and the metrics' ``outcome`` label.

    :func:`deliver` ends in ``DELIVERED`` or ``DEAD_LETTERED``; the notifier records ``SNOOZED`` and
    ``HELD_OUT`` for alerts it does not send.
    """

    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    SNOOZED = "snoozed"
    HELD_OUT = "held_out"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try before dead-lettering.

    The delay before retry ``n`` (1-based) is ``min(max_delay_s, base_delay_s * 2**(n-1))``, shortened by up
    to ``jitter`` of itself at random (so retries from many workers spread out but never exceed the cap),
    then raised to the receiver's ``Retry-After`` if that is longer. A retry whose delay would end past
    ``total_budget_s`` since the first attempt is not made.

    Examples
    --------
    >>> p = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, jitter=0.0)
    >>> [p.delay_for(n) for n in (1, 2, 3, 4, 5)]
    [1.0, 2.0, 4.0, 8.0, 10.0]
    >>> p.delay_for(1, retry_after=30.0)
    30.0
    >>> 0.9 <= RetryPolicy(base_delay_s=1.0, jitter=0.1).delay_for(1, rng=random.Random(7)) <= 1.0
    True
    >>> RetryPolicy(max_attempts=0)
    Traceback (most recent call last):
    ...
    streams.errors.ConfigError: setting 'max_attempts': must be >= 1
    """

    # The defaults of the delivery settings too (streams/settings/delivery.py).
    max_attempts: int = 8
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: float = 0.1
    total_budget_s: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts", "must be >= 1")
        if self.base_delay_s < 0:
            raise ConfigError("base_delay_s", "must be >= 0")
        if self.max_delay_s < self.base_delay_s:
            raise ConfigError("max_delay_s", "must be >= base_delay_s")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError("jitter", "must be between 0 and 1")
        if self.total_budget_s <= 0:
            raise ConfigError("total_budget_s", "must be > 0")

    def delay_for(
        self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        # Cap the exponent: 2**62 seconds is already "forever", and floats overflow past ~2**1023.
        backoff = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(attempt - 1, 62))
        if self.jitter:
            backoff *= 1.0 - self.jitter * (rng or random).random()
        return max(retry_after or 0.0, backoff)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryAttempt:
    """What ``on_retry`` is told before each backoff sleep."""

    sink: str
    attempt: int
    delay_s: float
    reason: str
    retry_after: float | None
    pending: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOutcome:
    """Result of :func:`deliver`.

    Examples
    --------
    >>> o = DeliveryOutcome(sink="slack", status=AlertOutcome.DEAD_LETTERED, attempts=1, reason="HTTP 404")
    >>> o.delivered, o.dead_lettered
    (False, True)
    """

    sink: str
    status: Literal[AlertOutcome.DELIVERED, AlertOutcome.DEAD_LETTERED]
    attempts: int
    reason: str | None = None
    #: Alerts that did not get through (empty when delivered); what the notifier should dead-letter.
    undelivered: tuple[Alert, ...] = ()

    @property
    def delivered(self) -> bool:
        return self.status is AlertOutcome.DELIVERED

    @property
    def dead_lettered(self) -> bool:
        return self.status is AlertOutcome.DEAD_LETTERED


async def deliver(
    sink: Sink,
    alerts: Sequence[Alert],
    policy: RetryPolicy | None = None,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    rng: random.Random | None = None,
    on_retry: Callable[[RetryAttempt], object] | None = None,
) -> DeliveryOutcome:
    """Send ``alerts`` to ``sink``, retrying transient failures per ``policy``.

    Only :class:`~streams.sinks.base.RetryableDeliveryError` and
    :class:`~streams.sinks.base.PermanentDeliveryError` are handled; anything else is a bug in the sink
    and propagates. When a retryable error reports ``pending`` alerts, only those are retried, so a receiver
    never gets an alert's successful request twice from one ``deliver`` call.

    Parameters
    ----------
    sink, alerts
        Where and what.
    policy
        Retry policy; defaults to ``RetryPolicy()``.
    sleep, clock
        Injectable for tests (virtual time). ``clock`` measures the retry budget.
    rng
        Random source for the jitter (seed it in tests).
    on_retry
        Called with a :class:`RetryAttempt` before each backoff sleep (e.g. to bump a metric).
    """
    policy = policy or RetryPolicy()
    pending = tuple(alerts)
    if not pending:
        return DeliveryOutcome(sink=sink.name, status=AlertOutcome.DELIVERED, attempts=0)
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            await sink.send(pending)
        except PermanentDeliveryError as exc:
            undelivered = pending if exc.pending is None else exc.pending
            return _dead_letter(sink, attempt, exc.reason, undelivered)
        except RetryableDeliveryError as exc:
            if exc.pending is not None:
                pending = exc.pending
            delay = policy.delay_for(attempt, retry_after=exc.retry_after, rng=rng)
            reason = _give_up_reason(policy, attempt, clock() - started + delay, exc)
            if reason is not None:
                return _dead_letter(sink, attempt, reason, pending)
            retry = RetryAttempt(
                sink=sink.name,
                attempt=attempt,
                delay_s=delay,
                reason=exc.reason,
                retry_after=exc.retry_after,
                pending=len(pending),
            )
            log.warning(
                "sink.retry",
                sink=sink.name,
                attempt=attempt,
                delay_s=round(delay, 3),
                reason=str(exc),
                pending=len(pending),
            )
            if on_retry is not None:
                on_retry(retry)
            await sleep(delay)
        else:
            log.info("sink.delivered", sink=sink.name, alerts=len(pending), attempts=attempt)
            return DeliveryOutcome(sink=sink.name, status=AlertOutcome.DELIVERED, attempts=attempt)


def _give_up_reason(
    policy: RetryPolicy, attempt: int, elapsed_after_delay: float, exc: RetryableDeliveryError
) -> str | None:
    """Why ``deliver`` stops retrying after ``attempt`` failed (None: retry after the delay)."""
    if attempt >= policy.max_attempts:
        return f"gave up after {attempt} attempts: {exc}"
    if elapsed_after_delay > policy.total_budget_s:
        return f"retry budget of {policy.total_budget_s:g}s exhausted after {attempt} attempts: {exc}"
    return None


def _dead_letter(sink: Sink, attempts: int, reason: str, undelivered: Sequence[Alert]) -> DeliveryOutcome:
    log.error("sink.dead_lettered", sink=sink.name, attempts=attempts, reason=reason, alerts=len(undelivered))
    return DeliveryOutcome(
        sink=sink.name,
        status=AlertOutcome.DEAD_LETTERED,
        attempts=attempts,
        reason=reason,
        undelivered=tuple(undelivered),
    )


class RateLimiter:
    """Space acquisitions at least ``min_interval_s`` apart (Slack allows ~1 message/second per webhook).

    Each caller reserves the next free slot before sleeping, so concurrent senders queue up in order
    without holding a lock across the sleep.

    Examples
    --------
    >>> class FakeTime:
    ...     now = 0.0
    ...     async def sleep(self, s: float) -> None:
    ...         self.now += s
    >>> t = FakeTime()
    >>> limiter = RateLimiter(1.0, clock=lambda: t.now, sleep=t.sleep)
    >>> async def three() -> list[float]:
    ...     stamps = []
    ...     for _ in range(3):
    ...         await limiter.acquire()
    ...         stamps.append(t.now)
    ...     return stamps
    >>> asyncio.run(three())
    [0.0, 1.0, 2.0]
    """

    def __init__(
        self, min_interval_s: float = 1.0, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ):
        if min_interval_s < 0:
            raise ConfigError("min_interval_s", "must be >= 0")
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._sleep = sleep
        self._next_free: float | None = None

    async def acquire(self) -> None:
        """Wait until this caller's slot; no await happens between reading and reserving it."""
        now = self._clock()
        slot = now if self._next_free is None else max(now, self._next_free)
        self._next_free = slot + self.min_interval_s
        if slot > now:
            await self._sleep(slot - now)
