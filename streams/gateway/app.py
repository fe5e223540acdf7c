"""The gateway's aiohttp application: routes, request checks, responses and metrics.

Every route follows the same path: read the body (413 over the limit), check the credentials (401), parse
(400), map to canonical events, validate them, produce and wait for Kafka's acknowledgement (503 with
``Retry-After`` when it does not come in time), then answer 200. Items that map to no valid event are
dead-lettered with their reason; unknown event types are answered 200 and counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.vocabulary import EventType
from streams.gateway import helpdesk, segment, stripe_events
from streams.gateway.feedback import FeedbackRoutes
from streams.gateway.metrics import GatewayMetrics
from streams.gateway.model import Bounds, Mapped, Rejection, RequestError, checked
from streams.gateway.openapi import openapi_spec
from streams.gateway.outbox import KafkaUnavailable, Outbox, Record
from streams.settings import Settings

log = structlog.get_logger(__name__)

RETRY_AFTER_S = 5
SEGMENT_KINDS = ("track", "page", "screen", "identify", "group", "alias")
Process = Callable[[web.Request, bytes], Mapped]
Answering = Callable[[web.Request, bytes], Awaitable[dict[str, Any] | None]]


@dataclass
class Gateway:
    settings: Settings
    outbox: Outbox
    accounts: dict[str, str]  # user -> account (the identities topic, followed)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stripe_accounts: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.metrics = GatewayMetrics.build(self.registry)
        self.bounds = Bounds(
            self.settings.windows.min_event_ts_ms, int(self.settings.windows.max_future_skew_seconds * 1000)
        )

    # -- the common path ----------------------------------------------------------------------------------

    def handler(self, source: str, process: Process) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                raw = await self._body(request)
                mapped = process(request, raw)
                answer = await self._produce(source, request.path, mapped)
            except RequestError as exc:
                return self._refused(source, request, exc)
            self.metrics.requests.labels(source=source, status="200").inc()
            return web.json_response(answer, dumps=_dumps)

        return handle

    def answers(self, source: str, work: Answering) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A handler of answers to alerts (streams/gateway/feedback.py): JSON, or an empty 200 for Slack."""

        async def handle(request: web.Request) -> web.Response:
            try:
                answer = await work(request, await self._body(request))
            except RequestError as exc:
                return self._refused(source, request, exc)
            self.metrics.requests.labels(source=source, status="200").inc()
            return web.Response() if answer is None else web.json_response(answer, dumps=_dumps)

        return handle

    def _refused(self, source: str, request: web.Request, exc: RequestError) -> web.Response:
        self.metrics.rejections.labels(source=source, reason=exc.reason.value).inc()
        self.metrics.requests.labels(source=source, status=str(exc.status)).inc()
        log.info(
            "gateway.refused",
            route=request.path,
            status=exc.status,
            reason=exc.reason.value,
            detail=exc.message,
        )
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
        body = {"success": False, "code": exc.reason.value, "message": exc.message}
        return web.json_response(body, status=exc.status, headers=headers, dumps=_dumps)

    async def _body(self, request: web.Request) -> bytes:
        limit = self.settings.ingest.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise RequestError(
                413, Rejection.TOO_LARGE, f"body of {request.content_length} bytes exceeds {limit}"
            )
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RequestError(413, Rejection.TOO_LARGE, f"body exceeds {limit} bytes") from None

    async def _produce(self, source: str, route: str, mapped: Mapped) -> dict[str, Any]:
        now_ms = int(self.clock() * 1000)
        valid = checked(mapped, self.bounds, now_ms)
        records: list[Record] = []
        produced: list[EventType] = []
        for event_type, body in valid:
            if self.outbox.seen(body.get("event_id")):
                mapped.ignored.append(Rejection.DUPLICATE)
                continue
            topic = self.settings.topics.events[event_type]
            records.append(
                Record(topic, body["account_id"].encode(), orjson.dumps(body), body.get("event_id"))
            )
            produced.append(event_type)
        for user, account in mapped.identities:
            records.append(Record(self.settings.topics.identities, user.encode(), account.encode()))
        for dead in mapped.dead:
            headers = (
                ("churnwatch.error.reason", dead.reason.value.encode()),
                ("churnwatch.error.detail", dead.detail.encode()[:1000]),
                ("churnwatch.source.route", route.encode()),
            )
            records.append(Record(self.settings.topics.deadletter, None, dead.raw, None, headers))
        started = time.perf_counter()
        try:
            await self.outbox.write(records, timeout=self.settings.ingest.ack_timeout_seconds)
        except KafkaUnavailable as exc:
            log.warning("gateway.kafka_unavailable", route=route, error=str(exc))
            raise RequestError(503, Rejection.KAFKA_UNAVAILABLE, "Kafka did not acknowledge; retry") from None
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        self.accounts.update(mapped.identities)
        for event_type, count in Counter(produced).items():
            self.metrics.events_produced.labels(source=source, type=event_type).inc(count)
        for reason, count in Counter([dead.reason for dead in mapped.dead] + mapped.ignored).items():
            self.metrics.rejections.labels(source=source, reason=reason.value).inc(count)
        return {
            "success": True,
            "events": len(produced),
            "dead_lettered": len(mapped.dead),
            "ignored": len(mapped.ignored),
        }

    # -- sources ----------------------------------------------------------------------------------------

    def segment(self, kind: str | None) -> Process:
        assert self.settings.ingest.write_key is not None
        write_key = self.settings.ingest.write_key.get_secret_value()

        def process(request: web.Request, raw: bytes) -> Mapped:
            authorization = request.headers.get("Authorization")
            if segment.write_key_of(authorization) is not None:
                segment.check_write_key(write_key, authorization, None)
                body = _json(raw)
            else:
                try:
                    body = _json(raw)
                except RequestError:
                    raise RequestError(401, Rejection.UNAUTHORIZED, "wrong or missing write key") from None
                segment.check_write_key(write_key, None, body)
            mapper = segment.SegmentMapper(
                self.accounts, datetime.fromtimestamp(self.clock(), UTC).isoformat()
            )
            if kind is None:
                return mapper.batch(body)
            if not isinstance(body, dict):
                raise RequestError(400, Rejection.INVALID_BODY, "a Segment message must be a JSON object")
            return mapper.one(kind, body)

        return process

    def stripe(self, request: web.Request, raw: bytes) -> Mapped:
        assert self.settings.ingest.stripe_webhook_secret is not None
        secret = self.settings.ingest.stripe_webhook_secret.get_secret_value()
        event = stripe_events.verify(raw, request.headers.get("Stripe-Signature"), secret)
        return stripe_events.map_event(event, self.stripe_accounts)

    def zendesk(self, request: web.Request, raw: bytes) -> Mapped:
        assert self.settings.ingest.zendesk_webhook_secret is not None
        ts_ms = helpdesk.verify_zendesk(
            raw,
            request.headers.get("X-Zendesk-Webhook-Signature"),
            request.headers.get("X-Zendesk-Webhook-Signature-Timestamp"),
            self.settings.ingest.zendesk_webhook_secret.get_secret_value(),
            self.clock(),
        )
        return helpdesk.map_zendesk(_json(raw), ts_ms)

    def intercom(self, request: web.Request, raw: bytes) -> Mapped:
        assert self.settings.ingest.intercom_client_secret is not None
        secret = self.settings.ingest.intercom_client_secret.get_secret_value()
        helpdesk.verify_intercom(raw, request.headers.get("X-Hub-Signature"), secret)
        return helpdesk.map_intercom(_json(raw), self.accounts)

    # -- plain routes -----------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics_text(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_spec(), dumps=_dumps)


def build_app(gateway: Gateway, feedback: FeedbackRoutes | None = None) -> web.Application:
    """The application; a source whose secret is unset has no routes (404)."""
    settings = gateway.settings
    app = web.Application(client_max_size=settings.ingest.max_body_bytes)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/metrics", gateway.metrics_text)
    app.router.add_get("/openapi.json", gateway.openapi)
    if settings.ingest.write_key is not None:
        for kind in SEGMENT_KINDS:
            app.router.add_post(f"/v1/{kind}", gateway.handler("segment", gateway.segment(kind)))
        app.router.add_post("/v1/batch", gateway.handler("segment", gateway.segment(None)))
    if settings.ingest.stripe_webhook_secret is not None:
        app.router.add_post("/webhooks/stripe", gateway.handler("stripe", gateway.stripe))
    if settings.ingest.zendesk_webhook_secret is not None:
        app.router.add_post("/webhooks/zendesk", gateway.handler("zendesk", gateway.zendesk))
    if settings.ingest.intercom_client_secret is not None:
        app.router.add_post("/webhooks/intercom", gateway.handler("intercom", gateway.intercom))
    if feedback is not None and feedback.slack_secret is not None:
        app.router.add_post("/slack/interactions", gateway.answers("slack", feedback.slack))
    if feedback is not None and (feedback.bearer_token or feedback.webhook_secret) is not None:
        app.router.add_post("/churnwatch/feedback/", gateway.answers("feedback", feedback.api))
    return app


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, Rejection.INVALID_JSON, f"malformed JSON: {exc}") from None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
