"""Tests of the notification sinks (``streams.sinks``), against a real recording HTTP server on loopback.

Nothing in httpx is mocked: every HTTP sink talks to :class:`tests.http_recorder.HTTPRecorder`. Time is
virtual where it matters (backoff sleeps, the Slack rate limiter) via an injected fake clock/sleep.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import random
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from detectors.alerts import Alert, AlertKind, Severity, Transition
from streams.errors import ChurnwatchError, ConfigError, DeliveryError
from streams.settings import DeliverySettings
from streams.sinks import (
    AlertOutcome,
    DeliveryOutcome,
    JsonlSink,
    PermanentDeliveryError,
    RateLimiter,
    RetryableDeliveryError,
    RetryAttempt,
    RetryPolicy,
    Sink,
    SlackSink,
    WebhookSink,
    build_sinks,
    deliver,
    parse_retry_after,
    send_test_alert,
)
from streams.sinks.slack_blocks import (
    FIELD_MAX,
    HEADER_MAX,
    MAX_BLOCKS,
    TEXT_MAX,
    render_alert,
    render_digest,
)
from tests.http_recorder import HTTPRecorder, RecordedRequest, Reply

SLACK_TOKEN = "xoxSECRETtoken0123456789"
SLACK_PATH = f"/services/T0SECRET/B0SECRET/{SLACK_TOKEN}"
WEBHOOK_TOKEN = "tok_9f8e7d6c5b4a3210"
WEBHOOK_PATH = f"/crm/hooks/{WEBHOOK_TOKEN}"
SIGNING_KEY = base64.b64encode(b"churnwatch-test-signing-key-0032").decode()
WEBHOOK_SECRET = f"whsec_{SIGNING_KEY}"
T0_MS = 1_764_151_200_000  # 2025-11-26T10:00:00Z


def make_alert(i: int = 0, **overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "kind": AlertKind.ACCOUNT_RISK,
        "account_id": f"acct-{i:06d}",
        "episode_id": f"acct-{i:06d}:{T0_MS}",
        "transition": Transition.OPENED,
        "severity": Severity.HIGH,
        "risk": 0.42,
        "plan": "pro",
        "mrr": 500.0,
        "reasons": ("active users -62% vs its 8-week weekday median", "2 urgent tickets open"),
        "event_ts_ms": T0_MS,
        "detected_ts_ms": T0_MS + 1_500,
    }
    fields.update(overrides)
    return Alert(**fields)


class FakeTime:
    """A virtual clock whose ``sleep`` records the delay and advances the clock instead of waiting."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds
        await asyncio.sleep(0)  # still yield, like a real sleep


@pytest.fixture
def recorder() -> Iterator[HTTPRecorder]:
    with HTTPRecorder() as rec:
        yield rec


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a developer's *_proxy variables must not route loopback traffic elsewhere.
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as c:
        yield c


def slack_sink(
    client: httpx.AsyncClient, rec: HTTPRecorder, fake: FakeTime | None = None, **kwargs: Any
) -> SlackSink:
    fake = fake or FakeTime()
    limiter = RateLimiter(1.0, clock=fake.now, sleep=fake.sleep)
    return SlackSink(client, SecretStr(rec.url_for(SLACK_PATH)), rate_limiter=limiter, **kwargs)


def webhook_sink(client: httpx.AsyncClient, rec: HTTPRecorder, **kwargs: Any) -> WebhookSink:
    return WebhookSink(client, SecretStr(rec.url_for(WEBHOOK_PATH)), SecretStr(WEBHOOK_SECRET), **kwargs)


def fast_policy(**overrides: Any) -> RetryPolicy:
    fields: dict[str, Any] = {
        "max_attempts": 5,
        "base_delay_s": 0.05,
        "max_delay_s": 0.5,
        "jitter": 0.5,
        "total_budget_s": 30.0,
    }
    fields.update(overrides)
    return RetryPolicy(**fields)


def succeeded(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if 200 <= r.reply.status < 300 and not r.reply.drop]


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """Every mrkdwn/plain text object in a Block Kit message."""
    texts: list[str] = []
    for block in message["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [e["text"] for e in block.get("elements", [])]
    return texts


def assert_slack_limits(message: dict[str, Any]) -> None:
    assert message["text"].strip(), "plain-text fallback missing"
    assert len(message["text"]) <= TEXT_MAX
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= MAX_BLOCKS
    header = blocks[0]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert 0 < len(header["text"]["text"]) <= HEADER_MAX
    action_ids = []
    for block in blocks[1:]:
        assert block["type"] in {"section", "context", "actions"}
        if block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25 and len(block["block_id"]) <= 255
            for button in block["elements"]:
                assert button["type"] == "button" and 0 < len(button["text"]["text"]) <= 75
                assert 0 < len(button["value"]) <= 2000
                action_ids.append(button["action_id"])
        elif block["type"] == "section":
            if "accessory" in block:
                menu = block["accessory"]
                assert menu["type"] == "overflow" and 2 <= len(menu["options"]) <= 5
                assert all(0 < len(option["value"]) <= 150 for option in menu["options"])
                action_ids.append(menu["action_id"])
            assert "text" in block or "fields" in block
            if "text" in block:
                assert len(block["text"]["text"]) <= TEXT_MAX
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= FIELD_MAX for f in block.get("fields", []))
        else:
            assert 1 <= len(block["elements"]) <= 10
            assert all(len(e["text"]) <= TEXT_MAX for e in block["elements"])
    assert len(set(action_ids)) == len(action_ids) and all(len(a) <= 255 for a in action_ids)


# ---------------------------------------------------------------------------------------------------------
# Slack


async def test_slack_single_alert_payload(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    alert = make_alert(1)
    await slack_sink(client, recorder).send([alert])

    (req,) = await recorder.wait_for(1)
    assert req.method == "POST" and req.path == SLACK_PATH
    assert (req.header("content-type") or "").startswith("application/json")
    msg = req.json()
    assert_slack_limits(msg)
    assert [b["type"] for b in msg["blocks"]] == ["header", "section", "section", "context", "actions"]
    assert msg["blocks"][0]["text"]["text"] == "🟠 acct-000001 — high churn risk"
    fields = [f["text"] for f in msg["blocks"][1]["fields"]]
    assert fields == [
        "*Risk*\n42%",
        "*MRR*\n500.00",
        "*Revenue at risk*\n210.00",
        "*Plan*\npro",
        "*Transition*\nopened",
        f"*Episode*\n{alert.episode_id}",
    ]
    reasons = msg["blocks"][2]["text"]["text"]
    assert "• active users -62% vs its 8-week weekday median\n• 2 urgent tickets open" in reasons
    context = msg["blocks"][3]["elements"][0]["text"]
    assert f"<!date^{T0_MS // 1000}^" in context and "2025-11-26 10:00:00 UTC" in context
    assert "acct-000001" in msg["text"] and "high churn risk" in msg["text"]


async def test_slack_limits_escaping_and_truncation(
    recorder: HTTPRecorder, client: httpx.AsyncClient
) -> None:
    nasty = "<!channel> & <https://evil.example|click> "
    alert = make_alert(
        account_id="Acme & <Sons> " + "x" * 400,
        plan="<b>enterprise</b>",
        reasons=tuple(f"{nasty}{i} " + "y" * 150 for i in range(200)),
    )
    await slack_sink(client, recorder).send([alert])

    msg = (await recorder.wait_for(1))[0].json()
    assert_slack_limits(msg)
    header = msg["blocks"][0]["text"]["text"]
    assert len(header) <= HEADER_MAX and header.endswith(" — high churn risk") and "…" in header
    reasons = msg["blocks"][2]["text"]["text"]
    assert len(reasons) <= TEXT_MAX and reasons.endswith("…")
    # mrkdwn is escaped: nobody gets pinged and no link is forged.
    for text in [msg["text"], reasons, *(f["text"] for f in msg["blocks"][1]["fields"])]:
        assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in reasons
    assert "*Plan*\n&lt;b&gt;enterprise&lt;/b&gt;" in [f["text"] for f in msg["blocks"][1]["fields"]]


async def test_pipeline_incident_has_its_own_header(
    recorder: HTTPRecorder, client: httpx.AsyncClient
) -> None:
    incident = make_alert(
        kind=AlertKind.PIPELINE_INCIDENT,
        account_id="consumer-lag",
        severity=Severity.CRITICAL,
        reasons=("partition 3 lag 120000 messages",),
        extra={"topic": "events", "lag": 120000},
    )
    await slack_sink(client, recorder).send([incident])
    msg = (await recorder.wait_for(1))[0].json()
    assert_slack_limits(msg)
    assert msg["blocks"][0]["text"]["text"] == "🚨 Pipeline incident — critical: consumer-lag"
    fields = [f["text"] for f in msg["blocks"][1]["fields"]]
    assert "*topic*\nevents" in fields and "*lag*\n120000" in fields
    assert not any(f.startswith("*Risk*") for f in fields)
    resolved = render_alert(make_alert(transition=Transition.RESOLVED))
    assert resolved["blocks"][0]["text"]["text"] == "✅ acct-000000 — churn risk resolved"


async def test_slack_digest_replaces_a_flood(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    sink = slack_sink(client, recorder)
    alerts = [make_alert(i, severity=Severity.MEDIUM) for i in range(3)]
    alerts.append(make_alert(99, severity=Severity.CRITICAL, mrr=9000.0))
    await sink.send(alerts)

    (req,) = await recorder.wait_for(1)
    msg = req.json()
    assert_slack_limits(msg)
    assert msg["blocks"][0]["text"]["text"] == "📣 4 churn alerts"
    lines = [b["text"]["text"] for b in msg["blocks"] if b["type"] == "section"][1:]
    assert len(lines) == 4 and lines[0].startswith("🔴 *acct-000099*")  # most severe first
    assert "acct-000099 (critical)" in msg["text"]


async def test_slack_digest_respects_block_limit(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    await slack_sink(client, recorder).send([make_alert(i) for i in range(120)])
    (req,) = await recorder.wait_for(1)
    msg = req.json()
    assert_slack_limits(msg)
    assert len(msg["blocks"]) == MAX_BLOCKS
    contexts = [e["text"] for b in msg["blocks"] if b["type"] == "context" for e in b["elements"]]
    shown = sum(1 for b in msg["blocks"] if b["type"] == "section") - 1  # minus the summary
    assert f"…and {120 - shown} more (see the alerts topic or the JSONL log)" in contexts


async def test_slack_rate_limiter_spaces_sends(client: httpx.AsyncClient) -> None:
    fake = FakeTime()
    # The recorder stamps arrivals with the fake clock, so spacing is asserted in virtual time.
    with HTTPRecorder(clock=fake.now) as rec:
        sink = slack_sink(client, rec, fake)
        await sink.send([make_alert(i) for i in range(3)])  # == threshold: one message each
        await sink.send([make_alert(7)])
        requests = await rec.wait_for(4)
    stamps = [r.received_at for r in requests]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(stamps)), stamps
    assert fake.sleeps == [1.0, 1.0, 1.0]


async def test_slack_retry_resends_only_undelivered_messages(
    recorder: HTTPRecorder, client: httpx.AsyncClient
) -> None:
    recorder.enqueue(200, 500, 200)
    alerts = [make_alert(i) for i in range(3)]
    fake = FakeTime()
    outcome = await deliver(
        slack_sink(client, recorder), alerts, fast_policy(), sleep=fake.sleep, clock=fake.now
    )

    assert outcome.delivered and outcome.attempts == 2
    headers = [r.json()["blocks"][0]["text"]["text"] for r in succeeded(await recorder.wait_for(4))]
    assert headers == [f"🟠 acct-00000{i} — high churn risk" for i in range(3)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    account=st.text(min_size=1, max_size=300),
    reasons=st.lists(st.text(max_size=400), max_size=40),
    plan=st.none() | st.text(max_size=80),
    n=st.integers(min_value=1, max_value=80),
)
def test_slack_rendering_always_within_limits(
    account: str, reasons: list[str], plan: str | None, n: int
) -> None:
    alert = make_alert(account_id=account, reasons=tuple(reasons), plan=plan, episode_id=account + ":1")
    assert_slack_limits(render_alert(alert))
    assert_slack_limits(render_alert(make_alert(kind=AlertKind.PIPELINE_INCIDENT, account_id=account)))
    assert_slack_limits(render_digest([alert] * n))


# ---------------------------------------------------------------------------------------------------------
# Signed webhook


async def test_webhook_requests_are_signed(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    alerts = [make_alert(1), make_alert(2, transition=Transition.ESCALATED, extra={"cohort": "smb"})]
    await webhook_sink(client, recorder).send(alerts)

    requests = await recorder.wait_for(2)
    verifier = Webhook(WEBHOOK_SECRET)
    for req, alert in zip(requests, alerts, strict=True):
        assert req.method == "POST" and req.path == WEBHOOK_PATH
        assert req.header("content-type") == "application/json"
        assert req.header("webhook-id") == alert.idempotency_key
        body = verifier.verify(req.body, req.headers)  # independent check with the reference library
        assert body["idempotency_key"] == alert.idempotency_key
        assert Alert.from_dict(body) == alert
        with pytest.raises(WebhookVerificationError):
            verifier.verify(req.body.replace(b"0.42", b"0.01"), req.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"another-key").decode()).verify(req.body, req.headers)


async def test_retries_honour_retry_after_and_deliver_each_alert_once(
    recorder: HTTPRecorder, client: httpx.AsyncClient
) -> None:
    # Alert 1 goes through; alert 2 meets 500, 500, 429 (Retry-After: 1) then 200; alert 3 then succeeds.
    recorder.enqueue(200, 500, 500, (429, {"Retry-After": "1"}), 200)
    alerts = [make_alert(i) for i in range(1, 4)]
    fake = FakeTime()
    retries: list[RetryAttempt] = []
    outcome = await deliver(
        webhook_sink(client, recorder),
        alerts,
        fast_policy(),
        sleep=fake.sleep,
        clock=fake.now,
        rng=random.Random(1234),
        on_retry=retries.append,
    )

    assert outcome == DeliveryOutcome(sink="webhook", status=AlertOutcome.DELIVERED, attempts=4)
    requests = await recorder.wait_for(6)
    assert len(requests) == 6
    ids = [r.header("webhook-id") for r in succeeded(requests)]
    assert ids == [a.idempotency_key for a in alerts]  # each alert's successful request exactly once
    assert [r.reply.status for r in requests] == [200, 500, 500, 429, 200, 200]
    assert len(fake.sleeps) == 3
    assert fake.sleeps[0] < 1.0 and fake.sleeps[1] < 1.0
    assert fake.sleeps[2] == pytest.approx(1.0)  # max(Retry-After, backoff) with a small backoff
    assert [r.retry_after for r in retries] == [None, None, 1.0]
    assert retries[-1].reason.startswith("HTTP 429") and retries[0].pending == 2


async def test_4xx_is_dead_lettered_at_once(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    recorder.enqueue((400, {}, "invalid_payload"))
    fake = FakeTime()
    alerts = [make_alert(1), make_alert(2)]
    outcome = await deliver(webhook_sink(client, recorder), alerts, fast_policy(), sleep=fake.sleep)

    assert outcome.dead_lettered and outcome.attempts == 1
    assert outcome.reason == "HTTP 400 Bad Request: invalid_payload"
    assert outcome.undelivered == tuple(alerts)
    assert fake.sleeps == []
    assert len(recorder.requests) == 1


async def test_timeout_is_retried(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    recorder.enqueue(Reply(200, delay_s=3.0))
    fake = FakeTime()
    retries: list[RetryAttempt] = []
    sink = webhook_sink(client, recorder, timeout=0.2)
    outcome = await deliver(sink, [make_alert(1)], fast_policy(), sleep=fake.sleep, on_retry=retries.append)

    assert outcome.delivered and outcome.attempts == 2
    assert retries[0].reason == "timeout (ReadTimeout)"
    first, second = await recorder.wait_for(2)
    assert first.header("webhook-id") == second.header("webhook-id") == make_alert(1).idempotency_key


async def test_dropped_connection_is_retried(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    recorder.enqueue(Reply(drop=True))
    fake = FakeTime()
    outcome = await deliver(slack_sink(client, recorder), [make_alert(1)], fast_policy(), sleep=fake.sleep)
    assert outcome.delivered and outcome.attempts == 2 and len(fake.sleeps) == 1


async def test_unreachable_receiver_is_dead_lettered_after_max_attempts(client: httpx.AsyncClient) -> None:
    with HTTPRecorder() as rec:
        sink = webhook_sink(client, rec)
    fake = FakeTime()  # the recorder is stopped: its port now refuses connections
    outcome = await deliver(sink, [make_alert(1)], fast_policy(max_attempts=3), sleep=fake.sleep)
    assert outcome.dead_lettered and outcome.attempts == 3 and len(fake.sleeps) == 2
    assert outcome.reason == "gave up after 3 attempts: connection error (ConnectError)"


async def test_retry_after_beyond_budget_is_dead_lettered(
    recorder: HTTPRecorder, client: httpx.AsyncClient
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    recorder.enqueue((503, {"Retry-After": later}))
    fake = FakeTime()
    outcome = await deliver(
        webhook_sink(client, recorder), [make_alert(1)], fast_policy(), sleep=fake.sleep, clock=fake.now
    )
    assert outcome.dead_lettered and outcome.attempts == 1 and fake.sleeps == []
    assert outcome.reason is not None and outcome.reason.startswith("retry budget of 30s exhausted")
    assert "HTTP 503 Service Unavailable" in outcome.reason


def test_backoff_is_exponential_capped_and_seeded() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, jitter=0.25)
    delays = [policy.delay_for(n, rng=random.Random(5)) for n in range(1, 7)]
    assert delays == [policy.delay_for(n, rng=random.Random(5)) for n in range(1, 7)]  # reproducible
    for n, delay in enumerate(delays, start=1):
        nominal = min(8.0, 2.0 ** (n - 1))
        assert 0.75 * nominal <= delay <= nominal
    assert policy.delay_for(1, retry_after=20.0, rng=random.Random(5)) == 20.0
    assert policy.delay_for(10, retry_after=0.5, rng=random.Random(5)) >= 6.0
    assert parse_retry_after("120") == 120.0


async def test_empty_batch_is_a_noop() -> None:
    outcome = await deliver(JsonlSink(Path("/nonexistent/never-written.jsonl")), [])
    assert outcome.delivered and outcome.attempts == 0


# ---------------------------------------------------------------------------------------------------------
# JSONL


async def test_jsonl_appends_lines(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "alerts.jsonl"
    sink = JsonlSink(path)
    first, second = [make_alert(1), make_alert(2)], [make_alert(3, extra={"price": Decimal("1.50")})]
    await sink.send(first)
    await sink.send(second)

    lines = path.read_bytes().splitlines()
    assert len(lines) == 3
    records = [orjson.loads(line) for line in lines]
    assert [Alert.from_dict(r) for r in records[:2]] == first
    assert records[2]["idempotency_key"] == second[0].idempotency_key
    assert records[2]["extra"] == {"price": "1.50"}  # odd values stringified, not dropped
    assert path.read_bytes().endswith(b"\n")


async def test_jsonl_unwritable_path_is_permanent(tmp_path: Path) -> None:
    (tmp_path / "a-dir.jsonl").mkdir()
    with pytest.raises(PermanentDeliveryError, match="cannot append"):
        await JsonlSink(tmp_path / "a-dir.jsonl").send([make_alert()])


# ---------------------------------------------------------------------------------------------------------
# Config, factory, test helper


def test_sinks_config_validation() -> None:
    url = f"https://crm.example.com{WEBHOOK_PATH}"
    with pytest.raises(ValidationError) as no_secret:
        DeliverySettings(webhook_url=SecretStr(url))
    with pytest.raises(ValueError) as not_whsec:
        DeliverySettings(webhook_url=SecretStr(url), webhook_secret=SecretStr(SLACK_TOKEN))
    with pytest.raises(ValidationError) as bad_b64:
        DeliverySettings(webhook_url=SecretStr(url), webhook_secret=SecretStr("whsec_!!!not-base64!!!"))
    with pytest.raises(ValidationError) as bad_scheme:
        DeliverySettings(slack_webhook_url=SecretStr(f"ftp://hooks.slack.com{SLACK_PATH}"))
    for err in (no_secret, not_whsec, bad_b64):
        assert "webhook_secret" in str(err.value)
    assert "slack_webhook_url" in str(bad_scheme.value)
    for err in (no_secret, not_whsec, bad_b64, bad_scheme):
        text = str(err.value)
        assert WEBHOOK_TOKEN not in text and SLACK_TOKEN not in text and "not-base64" not in text
    with pytest.raises(ValidationError):
        DeliverySettings(max_attempts=0)
    cfg = DeliverySettings(max_attempts=2, base_delay_s=0.5, max_delay_s=4.0, total_budget_s=9.0)
    assert cfg.retry_policy() == RetryPolicy(
        max_attempts=2, base_delay_s=0.5, max_delay_s=4.0, total_budget_s=9.0
    )
    # One set of defaults: a policy built without settings retries as the default settings do.
    assert DeliverySettings().retry_policy() == RetryPolicy()
    with pytest.raises(ConfigError, match="'jitter'"):
        RetryPolicy(jitter=2.0)


async def test_build_sinks(tmp_path: Path, recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    assert build_sinks(DeliverySettings(), client) == []
    cfg = DeliverySettings(
        slack_webhook_url=SecretStr(recorder.url_for(SLACK_PATH)),
        webhook_url=SecretStr(recorder.url_for(WEBHOOK_PATH)),
        webhook_secret=SecretStr(WEBHOOK_SECRET),
        jsonl_path=tmp_path / "alerts.jsonl",
        slack_digest_threshold=5,
    )
    sinks = build_sinks(cfg, client)
    assert [s.name for s in sinks] == ["slack", "webhook", "jsonl"]
    assert all(isinstance(s, Sink) for s in sinks)
    slack, webhook, jsonl = sinks
    assert isinstance(slack, SlackSink) and slack.digest_threshold == 5
    assert isinstance(webhook, WebhookSink) and isinstance(jsonl, JsonlSink)
    assert issubclass(RetryableDeliveryError, DeliveryError) and issubclass(DeliveryError, ChurnwatchError)


async def test_send_test_alert(recorder: HTTPRecorder, client: httpx.AsyncClient) -> None:
    sink = slack_sink(client, recorder)
    ok = await send_test_alert(sink)
    assert ok == f"slack ({recorder.url}/…): test alert delivered (1 attempt)"
    msg = (await recorder.wait_for(1))[0].json()
    assert msg["blocks"][0]["text"]["text"] == "🟡 churnwatch-test — medium churn risk"

    recorder.enqueue((404, {}, "no_service"))
    failed = await send_test_alert(sink, sleep=FakeTime().sleep)
    assert (
        failed
        == f"slack ({recorder.url}/…): test alert FAILED after 1 attempt: HTTP 404 Not Found: no_service"
    )


# ---------------------------------------------------------------------------------------------------------
# Secrets


async def test_secrets_never_reach_logs_reprs_or_errors(
    recorder: HTTPRecorder, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # includes httpx's "HTTP Request: POST <url>" INFO line
    fake = FakeTime()
    cfg = DeliverySettings(
        slack_webhook_url=SecretStr(recorder.url_for(SLACK_PATH)),
        webhook_url=SecretStr(recorder.url_for(WEBHOOK_PATH)),
        webhook_secret=SecretStr(WEBHOOK_SECRET),
    )
    slack, webhook = build_sinks(cfg, client, clock=fake.now, sleep=fake.sleep)
    policy = fast_policy(max_attempts=3)
    seen: list[object] = [repr(cfg), cfg.model_dump_json(), repr(slack), repr(webhook)]

    with structlog.testing.capture_logs() as logs:
        # Retryable then permanent failures, with receivers that echo our secrets back in the body.
        recorder.enqueue(500, (403, {}, SLACK_TOKEN), 500, (401, {}, WEBHOOK_TOKEN), 200)
        for sink in (slack, webhook):
            outcome = await deliver(sink, [make_alert(1)], policy, sleep=fake.sleep, on_retry=seen.append)
            assert outcome.dead_lettered
            seen += [repr(outcome), str(outcome.reason)]
        seen.append(await send_test_alert(slack, sleep=fake.sleep))
        for sink, token in ((slack, SLACK_TOKEN), (webhook, WEBHOOK_TOKEN)):  # errors straight from send()
            recorder.enqueue((401, {}, token))
            with pytest.raises(DeliveryError) as err:
                await sink.send([make_alert(2)])
            seen += [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value))]
        recorder.stop()  # now connection errors
        for sink in (slack, webhook):
            outcome = await deliver(sink, [make_alert(3)], policy, sleep=fake.sleep, on_retry=seen.append)
            seen += [repr(outcome), str(outcome.reason)]
            with pytest.raises(RetryableDeliveryError) as err:
                await sink.send([make_alert(4)])
            seen += [str(err.value), "".join(traceback.format_exception(err.value))]

    corpus = "\n".join([*map(str, seen), *map(str, logs), caplog.text])
    # The test would be vacuous if nothing was logged: check the interesting lines are there.
    events = {e["event"] for e in logs}
    assert {"sink.retry", "sink.dead_lettered", "sink.delivered"} <= events
    assert "HTTP Request: POST" in caplog.text and "127.0.0.1" in corpus
    for secret in (SLACK_PATH, SLACK_TOKEN, WEBHOOK_PATH, WEBHOOK_TOKEN, WEBHOOK_SECRET, SIGNING_KEY):
        assert secret not in corpus, f"secret leaked: {secret!r}"
