"""Answers to alerts on the gateway: ``POST /slack/interactions`` and ``POST /churnwatch/feedback/``.

Slack: the request signature is checked with ``slack_sdk``'s :class:`SignatureVerifier` (HMAC-SHA256 of
``v0:<timestamp>:<body>``, constant-time compare, 5-minute tolerance); the button's value is the alert id. The
answer is produced to the feedback topic (and a *Snooze 14 d* also to the alerts topic as a snooze record the
notifier honours) before Slack gets its 200; the message is then updated through the interaction's
``response_url`` ("marked false alarm by @ana") in the background, with the injected HTTP client.

CRMs and tools: a JSON body ``{"alert_id", "account_id", "label", "user", "note"}``, authenticated by
``Authorization: Bearer <CHURNWATCH_FEEDBACK_TOKEN>`` or a Standard Webhooks signature
(``CHURNWATCH_FEEDBACK_WEBHOOK_SECRET``). Without ``alert_id``: the account's latest remembered alert.

The same answer (alert id + label + who) is recorded once; an alert the gateway does not know is a 404.
Answers to one alert are recorded one at a time (a lock per alert id), so two clicks racing each other are
still one answer, and each recorded answer is reported once to ``on_answer`` (the gateway's metrics) with
what it adds: the alert's first answer, its first with that label (``AnswerNews``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import structlog
from aiohttp import web
from slack_sdk.signature import Clock, SignatureVerifier
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from streams.feedback import Feedback, FeedbackLabel, FeedbackSource
from streams.gateway.alert_index import AlertIndex, AnswerNews, KnownAlert
from streams.gateway.model import Rejection, RequestError
from streams.gateway.outbox import KafkaUnavailable, Record
from streams.sinks.notifier import snooze_record
from streams.sinks.slack_blocks import FEEDBACK_ACTION, FEEDBACK_BLOCK, TEXT_MAX, escape_mrkdwn, truncate

log = structlog.get_logger(__name__)

MAX_NOTE = 1_000
MAX_USER = 256


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer as a request states it, before it is checked against the index."""

    label: FeedbackLabel
    user: str
    alert_id: str | None
    account_id: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SlackAction:
    answer: Answer
    response_url: str | None
    message: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """An answer the gateway recorded (``news``) or found already recorded (``news`` is None)."""

    feedback: Feedback
    alert: KnownAlert
    news: AnswerNews | None

    @property
    def duplicate(self) -> bool:
        return self.news is None


class _GatewayClock(Clock):
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()


def parse_slack(body: bytes) -> SlackAction | None:
    """The answer in a ``block_actions`` interaction; ``None`` for any other interaction."""
    try:
        form = parse_qs(body.decode(), strict_parsing=True)
        payload = orjson.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        raise RequestError(
            400, Rejection.INVALID_BODY, "not a Slack interaction (form field 'payload')"
        ) from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    action_id = str(action.get("action_id", ""))
    if not action_id.startswith(FEEDBACK_ACTION + "."):
        return None
    option = action.get("selected_option")
    if isinstance(option, dict):  # a digest line's overflow menu: "<label>|<alert id>"
        label, _, alert_id = str(option.get("value", "")).partition("|")
    else:
        label, alert_id = action_id.removeprefix(FEEDBACK_ACTION + "."), str(action.get("value", ""))
    user = payload.get("user")
    user = user if isinstance(user, dict) else {}
    name = user.get("username") or user.get("name") or user.get("id")
    try:
        answer = Answer(FeedbackLabel(label), str(name or "slack")[:MAX_USER], alert_id or None)
    except ValueError:
        raise RequestError(400, Rejection.INVALID_BODY, f"unknown answer {label!r}") from None
    url = payload.get("response_url")
    message = payload.get("message")
    return SlackAction(
        answer, url if isinstance(url, str) else None, message if isinstance(message, dict) else None
    )


def parse_api(body: bytes) -> Answer:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, Rejection.INVALID_JSON, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, Rejection.INVALID_BODY, "an answer must be a JSON object")
    texts = {name: data.get(name) for name in ("alert_id", "account_id", "user", "note")}
    if any(value is not None and (not isinstance(value, str) or not value) for value in texts.values()):
        raise RequestError(
            400, Rejection.INVALID_BODY, "alert_id, account_id, user and note must be non-empty text"
        )
    if texts["alert_id"] is None and texts["account_id"] is None:
        raise RequestError(
            400, Rejection.INVALID_BODY, "name the alert ('alert_id') or the account ('account_id')"
        )
    try:
        label = FeedbackLabel(str(data.get("label")))
    except ValueError:
        labels = ", ".join(label.value for label in FeedbackLabel)
        raise RequestError(400, Rejection.INVALID_BODY, f"'label' must be one of {labels}") from None
    note = texts["note"]
    return Answer(
        label,
        (texts["user"] or "api")[:MAX_USER],
        texts["alert_id"],
        texts["account_id"],
        note and note[:MAX_NOTE],
    )


def answered_blocks(blocks: list[Any], alert_id: str, line: str) -> list[Any]:
    """The message's blocks with the answered alert's buttons (or overflow menu) replaced by ``line``.

    >>> blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}},
    ...           {"type": "actions", "block_id": "churnwatch.feedback", "elements": []}]
    >>> answered_blocks(blocks, "a:1:opened", "marked handled by @ana")[1]
    {'type': 'context', 'elements': [{'type': 'mrkdwn', 'text': 'marked handled by @ana'}]}
    """
    updated: list[Any] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "actions" and block.get("block_id") == FEEDBACK_BLOCK:
            updated.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
            continue
        menu = block.get("accessory")
        options = menu.get("options") if isinstance(menu, dict) else None
        if isinstance(options, list) and any(
            str(o.get("value", "")).endswith("|" + alert_id) for o in options
        ):
            text = block.get("text", {}).get("text", "")
            block = {key: value for key, value in block.items() if key != "accessory"}
            block["text"] = {"type": "mrkdwn", "text": truncate(f"{text}\n_{line}_", TEXT_MAX)}
        updated.append(block)
    return updated


@dataclass
class FeedbackRoutes:
    """The two answer routes; ``produce`` is the gateway's outbox write (records, timeout)."""

    index: AlertIndex
    produce: Callable[[list[Record]], Awaitable[int]]
    http: httpx.AsyncClient
    clock: Callable[[], float]
    topic_feedback: str
    topic_alerts: str
    slack_secret: str | None = None
    bearer_token: str | None = None
    webhook_secret: str | None = None
    on_answer: Callable[[Recorded], None] = lambda recorded: None
    _updates: set[asyncio.Task[None]] = field(default_factory=set)
    _serial: dict[str, tuple[asyncio.Lock, list[int]]] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, alert_id: str) -> AsyncIterator[None]:
        lock, users = self._serial.setdefault(alert_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._serial[alert_id]

    async def record(self, answer: Answer, source: FeedbackSource) -> tuple[Feedback, bool]:
        """Produce the answer (once); returns it and whether it was a repeat. 404 for an unknown alert."""
        alert_id = answer.alert_id or (self.index.latest(answer.account_id) if answer.account_id else None)
        known = self.index.find(alert_id) if alert_id else None
        if known is None or (answer.account_id is not None and answer.account_id != known.account_id):
            what = f"alert {alert_id!r}" if alert_id else f"any recent alert of account {answer.account_id!r}"
            raise RequestError(404, Rejection.UNKNOWN_ALERT, f"no {what} known to the gateway")
        feedback = Feedback(
            account_id=known.account_id,
            alert_id=known.alert_id,
            label=answer.label,
            user=answer.user,
            source=source,
            answered_ts_ms=int(self.clock() * 1000),
            note=answer.note,
        )
        async with self._one_at_a_time(known.alert_id):
            news = None if self.index.answered(feedback.feedback_id) else self.index.news(feedback)
            if news is not None:  # judged before producing: the follower may read the answer back first
                await self._produce(feedback)
                self.index.remember_answer(feedback)
        recorded = Recorded(feedback, known, news)
        self.on_answer(recorded)
        log.info(
            "gateway.feedback",
            alert=feedback.alert_id,
            label=feedback.label.value,
            duplicate=recorded.duplicate,
        )
        return feedback, recorded.duplicate

    async def _produce(self, feedback: Feedback) -> None:
        key = feedback.account_id.encode()
        event_id = "feedback:" + feedback.feedback_id
        records = [Record(self.topic_feedback, key, feedback.to_bytes(), event_id)]
        if feedback.snooze_until_ms is not None:
            snooze = snooze_record(feedback.account_id, feedback.snooze_until_ms)
            records.append(Record(self.topic_alerts, key, snooze, "snooze:" + feedback.feedback_id))
        try:
            await self.produce(records)
        except KafkaUnavailable as exc:
            log.warning("gateway.kafka_unavailable", route="feedback", error=str(exc))
            raise RequestError(503, Rejection.KAFKA_UNAVAILABLE, "Kafka did not acknowledge; retry") from None

    # -- Slack ---------------------------------------------------------------------------------------------

    async def slack(self, request: web.Request, raw: bytes) -> dict[str, Any] | None:
        assert self.slack_secret is not None
        verifier = SignatureVerifier(self.slack_secret, clock=_GatewayClock(self.clock))
        try:
            valid = verifier.is_valid_request(raw, dict(request.headers))
        except (ValueError, UnicodeDecodeError):  # a timestamp that is no number, a body that is no text
            valid = False
        if not valid:
            raise RequestError(401, Rejection.UNAUTHORIZED, "wrong, missing or stale Slack signature")
        action = parse_slack(raw)
        if action is None:
            return None  # another interaction (or another app's button): nothing to record
        feedback, _ = await self.record(action.answer, FeedbackSource.SLACK)
        if action.response_url is not None:
            task = asyncio.create_task(self._update_message(action, feedback))
            self._updates.add(task)
            task.add_done_callback(self._updates.discard)
        return None

    async def _update_message(self, action: SlackAction, feedback: Feedback) -> None:
        assert action.response_url is not None
        line = f"{feedback.label.phrase} by @{escape_mrkdwn(feedback.user)}"
        message = action.message or {}
        blocks = answered_blocks(list(message.get("blocks") or []), feedback.alert_id, line)
        body: dict[str, Any] = {"replace_original": True, "text": message.get("text") or line}
        body["blocks"] = blocks or [{"type": "context", "elements": [{"type": "mrkdwn", "text": line}]}]
        try:
            response = await self.http.post(action.response_url, json=body)
        except httpx.HTTPError as exc:
            log.warning("gateway.slack_update_failed", error=type(exc).__name__)
            return
        if response.status_code >= 300:
            log.warning("gateway.slack_update_failed", status=response.status_code)

    # -- CRMs and tools ------------------------------------------------------------------------------------

    def check_api_auth(self, request: web.Request, raw: bytes) -> None:
        authorization = request.headers.get("Authorization", "")
        if self.bearer_token is not None and authorization.startswith("Bearer "):
            given = authorization.removeprefix("Bearer ").strip().encode()
            if hmac.compare_digest(given, self.bearer_token.encode()):
                return
        if self.webhook_secret is not None and "webhook-signature" in request.headers:
            headers = {name.lower(): value for name, value in request.headers.items()}
            try:
                Webhook(self.webhook_secret).verify(raw, headers, json_parse=False)
            except WebhookVerificationError:
                pass
            else:
                return
        raise RequestError(401, Rejection.UNAUTHORIZED, "wrong or missing bearer token or webhook signature")

    async def api(self, request: web.Request, raw: bytes) -> dict[str, Any]:
        self.check_api_auth(request, raw)
        feedback, duplicate = await self.record(parse_api(raw), FeedbackSource.API)
        return {"success": True, "duplicate": duplicate, **feedback.to_dict()}

    async def stop(self) -> None:
        """Let message updates in flight finish (bounded)."""
        for task in list(self._updates):
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)
