"""Answers to alerts end to end on the real broker: Slack click / API / CLI -> gateway -> feedback topic.

Slack requests are signed here exactly as Slack signs them (``slack_sdk``'s ``SignatureVerifier``); Slack
itself, where the gateway updates the message through ``response_url``, is a local HTTP recorder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

from detectors.alerts import Alert
from streams.sinks.slack_blocks import render_alert, render_digest
from tests.gateway_harness import GatewayFactory, GatewayProcess, gateway_factory, unique
from tests.http_recorder import HTTPRecorder
from tests.kafka_harness import KafkaForTests, make_alert, wait_until

pytestmark = pytest.mark.kafka

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FEEDBACK_TOKEN = "fb_token_0123456789"
FEEDBACK_WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_ENV = {
    "CHURNWATCH_SLACK_SIGNING_SECRET": SLACK_SECRET,
    "CHURNWATCH_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
    "CHURNWATCH_FEEDBACK_WEBHOOK_SECRET": FEEDBACK_WHSEC,
}


@pytest.fixture(scope="module")
def factory(kafka: KafkaForTests, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    with gateway_factory(
        kafka, tmp_path_factory.mktemp("feedback"), "feedback", CHURNWATCH_TOPIC_FEEDBACK="{prefix}.feedback"
    ) as gateways:
        yield gateways


@pytest.fixture(scope="module")
def gateway(factory: GatewayFactory) -> GatewayProcess:
    return factory.start(
        CHURNWATCH_SLACK_SIGNING_SECRET=SLACK_SECRET,
        CHURNWATCH_FEEDBACK_TOKEN=FEEDBACK_TOKEN,
        CHURNWATCH_FEEDBACK_WEBHOOK_SECRET=FEEDBACK_WHSEC,
    )


@pytest.fixture(scope="module")
def slack() -> Iterator[HTTPRecorder]:
    with HTTPRecorder() as recorder:
        yield recorder


def published(
    factory: GatewayFactory,
    gateway: GatewayProcess,
    account: str,
    count: int = 1,
    reasons: tuple[str, ...] = ("active users -62% vs its usual level",),
) -> list[Alert]:
    """Write ``count`` alerts of ``account`` (detected an hour ago) to the alerts topic; wait until known."""
    now_ms = int(time.time() * 1000)
    alerts = [
        make_alert(account, episode_ts_ms=now_ms - 3_600_000 + i, reasons=reasons) for i in range(count)
    ]
    known = gateway.metric("churnwatch_feedback_alerts_known")
    factory.workers.produce(
        (factory.topic("alerts"), a.account_id.encode(), orjson.dumps(a.to_dict())) for a in alerts
    )
    wait_until(
        lambda: gateway.metric("churnwatch_feedback_alerts_known") >= known + count,
        timeout=60,
        what=f"gateway indexing {count} alerts of {account}",
    )
    return alerts


def answers(factory: GatewayFactory, account: str) -> list[dict[str, Any]]:
    return [value for value in factory.values("feedback") if value["account_id"] == account]


def interaction(alert: Alert, label: str, response_url: str, *, user: str = "ana") -> bytes:
    """The form body Slack posts when someone clicks one of the alert's buttons."""
    message = render_alert(alert)
    actions = next(block for block in message["blocks"] if block["type"] == "actions")
    button = next(b for b in actions["elements"] if b["action_id"].endswith("." + label))
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": user, "name": user, "team_id": "T0001"},
        "team": {"id": "T0001", "domain": "acme"},
        "container": {"type": "message", "message_ts": "1764151200.000100", "channel_id": "C0001"},
        "response_url": response_url,
        "message": {"type": "message", "ts": "1764151200.000100", **message},
        "actions": [{**button, "block_id": actions["block_id"], "action_ts": "1764151230.000200"}],
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def slack_headers(body: bytes, *, secret: str = SLACK_SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_slack_click_lands_once_even_when_sent_twice_and_updates_the_message(
    factory: GatewayFactory, gateway: GatewayProcess, slack: HTTPRecorder
) -> None:
    account = unique("slack")
    (alert,) = published(factory, gateway, account)
    path = f"/actions/T0001/{account}/token"
    body = interaction(alert, "false-alarm", slack.url_for(path))
    first = gateway.post("/slack/interactions", body, **slack_headers(body))
    second = gateway.post("/slack/interactions", body, **slack_headers(body))
    assert (first.status_code, second.status_code) == (200, 200), first.text + second.text

    # Both answers were acknowledged before their 200: the topic now holds all it will ever hold of them.
    (recorded,) = answers(factory, account)
    assert recorded["alert_id"] == alert.idempotency_key
    assert (recorded["label"], recorded["user"], recorded["source"]) == ("false-alarm", "ana", "slack")
    assert recorded["feedback_id"] == f"{alert.idempotency_key}|false-alarm|ana"
    record = next(
        r for r in factory.read("feedback") if orjson.loads(bytes(r.value))["account_id"] == account
    )
    assert bytes(record.key) == account.encode()
    labels = {"source": "slack", "label": "false-alarm"}
    assert gateway.metric("churnwatch_feedback_answers_total", **labels, duplicate="false") >= 1
    assert gateway.metric("churnwatch_feedback_answers_total", **labels, duplicate="true") >= 1

    update = slack.wait_for_sync(1, timeout=30, where=lambda r: r.path == path)[0].json()
    assert update["replace_original"] is True
    assert [block["type"] for block in update["blocks"]] == [
        "header",
        "section",
        "section",
        "context",
        "context",
    ]
    assert update["blocks"][-1]["elements"][0]["text"] == "marked false alarm by @ana"
    assert update["text"] == render_alert(alert)["text"]


def test_digest_menu_answer_and_snooze_record(
    factory: GatewayFactory, gateway: GatewayProcess, slack: HTTPRecorder
) -> None:
    account = unique("digest")
    alerts = published(factory, gateway, account, count=4)
    digest = render_digest(alerts)
    line = next(
        b
        for b in digest["blocks"]
        if "accessory" in b and b["accessory"]["options"][0]["value"].endswith(alerts[2].idempotency_key)
    )
    option = next(o for o in line["accessory"]["options"] if o["value"].startswith("snooze|"))
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob"},
        "response_url": slack.url_for(f"/actions/{account}"),
        "message": digest,
        "actions": [
            {"type": "overflow", "action_id": line["accessory"]["action_id"], "selected_option": option}
        ],
    }
    body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    assert gateway.post("/slack/interactions", body, **slack_headers(body)).status_code == 200

    (recorded,) = answers(factory, account)
    assert (recorded["alert_id"], recorded["label"]) == (alerts[2].idempotency_key, "snooze")
    assert recorded["snooze_until_ms"] - recorded["answered_ts_ms"] == 14 * 86_400_000
    snoozes = [
        v for v in factory.values("alerts") if v.get("type") == "snooze" and v["account_id"] == account
    ]
    assert [s["until_ms"] for s in snoozes] == [recorded["snooze_until_ms"]]
    update = slack.wait_for_sync(1, timeout=30, where=lambda r: r.path == f"/actions/{account}")[0].json()
    answered = [
        b for b in update["blocks"] if "snoozed for 14 days by @bob" in b.get("text", {}).get("text", "")
    ]
    assert len(answered) == 1 and "accessory" not in answered[0]
    assert sum("accessory" in b for b in update["blocks"]) == 3


@pytest.mark.parametrize("fault", ["wrong secret", "no signature", "ten minutes old", "garbage timestamp"])
def test_bad_slack_signatures_are_401_and_write_nothing(
    factory: GatewayFactory, gateway: GatewayProcess, slack: HTTPRecorder, fault: str
) -> None:
    account = unique("forged")
    (alert,) = published(factory, gateway, account)
    path = f"/actions/{account}"
    body = interaction(alert, "real", slack.url_for(path))
    headers = {
        "wrong secret": slack_headers(body, secret="not-the-signing-secret"),
        "no signature": {"Content-Type": "application/x-www-form-urlencoded"},
        "ten minutes old": slack_headers(body, at=time.time() - 600),
        "garbage timestamp": {**slack_headers(body), "X-Slack-Request-Timestamp": "soon"},
    }[fault]
    response = gateway.post("/slack/interactions", body, **headers)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"
    # A correctly signed answer of another account, sent after, is on the topic: the forged one never will be.
    (other,) = published(factory, gateway, account + "-ok")
    good = interaction(other, "real", slack.url_for(path + "-ok"))
    assert gateway.post("/slack/interactions", good, **slack_headers(good)).status_code == 200
    assert answers(factory, account) == [] and len(answers(factory, account + "-ok")) == 1
    assert not [r for r in slack.requests if r.path == path]


def test_answer_to_unknown_alert_is_404_and_writes_nothing(
    factory: GatewayFactory, gateway: GatewayProcess, slack: HTTPRecorder
) -> None:
    account = unique("unknown")
    never_published = make_alert(account, episode_ts_ms=int(time.time() * 1000))
    body = interaction(never_published, "handled", slack.url_for(f"/actions/{account}"))
    response = gateway.post("/slack/interactions", body, **slack_headers(body))
    assert response.status_code == 404 and response.json()["code"] == "unknown_alert"
    api = gateway.post(
        "/churnwatch/feedback/",
        {"account_id": account, "label": "real"},
        Authorization=f"Bearer {FEEDBACK_TOKEN}",
    )
    assert api.status_code == 404
    (alert,) = published(factory, gateway, account)
    wrong_account = {"alert_id": alert.idempotency_key, "account_id": "someone-else", "label": "real"}
    assert (
        gateway.post(
            "/churnwatch/feedback/", wrong_account, Authorization=f"Bearer {FEEDBACK_TOKEN}"
        ).status_code
        == 404
    )
    assert answers(factory, account) == []


def test_feedback_api_bearer_and_standard_webhooks(factory: GatewayFactory, gateway: GatewayProcess) -> None:
    account = unique("crm")
    older, latest = published(factory, gateway, account, count=2)
    bearer = gateway.post(
        "/churnwatch/feedback/",
        {"account_id": account, "label": "handled", "user": "crm-bot", "note": "called them"},
        Authorization=f"Bearer {FEEDBACK_TOKEN}",
    )
    assert bearer.status_code == 200, bearer.text
    assert (bearer.json()["alert_id"], bearer.json()["duplicate"]) == (latest.idempotency_key, False)

    body = orjson.dumps({"alert_id": older.idempotency_key, "label": "real", "user": "hubspot"})
    signature = Webhook(FEEDBACK_WHSEC).sign("msg_1", datetime.now(UTC), body.decode())
    signed = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": signature,
    }
    assert gateway.post("/churnwatch/feedback/", body, **signed).status_code == 200
    for refused in ({"Authorization": "Bearer guess"}, {**signed, "webhook-signature": "v1,AAAA"}, {}):
        assert gateway.post("/churnwatch/feedback/", body, **refused).status_code == 401
    bad = gateway.post(
        "/churnwatch/feedback/",
        {"account_id": account, "label": "meh"},
        Authorization=f"Bearer {FEEDBACK_TOKEN}",
    )
    assert bad.status_code == 400 and "label" in bad.json()["message"]

    got = sorted((a["alert_id"], a["label"], a["source"], a["note"]) for a in answers(factory, account))
    assert got == sorted(
        [
            (latest.idempotency_key, "handled", "api", "called them"),
            (older.idempotency_key, "real", "api", None),
        ]
    )


def test_cli_answers_through_the_gateway(factory: GatewayFactory, gateway: GatewayProcess) -> None:
    account = unique("cli")
    (alert,) = published(factory, gateway, account)
    env = factory.env(CHURNWATCH_FEEDBACK_TOKEN=FEEDBACK_TOKEN)
    command = [sys.executable, "-m", "streams", "alerts", "feedback", account, "--gateway", gateway.url]
    ok = subprocess.run(
        [*command, "--label", "false-alarm", "--user", "cli-user"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"recorded false-alarm for {account} (alert {alert.idempotency_key})"
    (recorded,) = answers(factory, account)
    assert (recorded["user"], recorded["source"]) == ("cli-user", "api")

    unknown = subprocess.run(
        [*command, "--label", "real", "--alert", "nope:1:opened"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "404" in unknown.stderr and "nope:1:opened" in unknown.stderr


def test_a_new_gateway_knows_the_alerts_and_the_answers_already_recorded(
    factory: GatewayFactory, gateway: GatewayProcess, slack: HTTPRecorder
) -> None:
    account = unique("restart")
    (alert,) = published(factory, gateway, account)
    body = interaction(alert, "handled", slack.url_for(f"/actions/{account}"), user="cy")
    assert gateway.post("/slack/interactions", body, **slack_headers(body)).status_code == 200
    replica = factory.start(
        CHURNWATCH_SLACK_SIGNING_SECRET=SLACK_SECRET, CHURNWATCH_FEEDBACK_TOKEN=FEEDBACK_TOKEN
    )
    try:
        again = replica.post("/slack/interactions", body, **slack_headers(body))
        assert again.status_code == 200, again.text
        labels = {"source": "slack", "label": "handled", "duplicate": "true"}
        assert replica.metric("churnwatch_feedback_answers_total", **labels) == 1
        assert len(answers(factory, account)) == 1
    finally:
        replica.stop()


def test_answer_routes_404_without_their_secrets(factory: GatewayFactory) -> None:
    bare = factory.start(drop=tuple(SECRET_ENV))
    try:
        assert bare.post("/slack/interactions", b"payload=%7B%7D").status_code == 404
        assert bare.post("/churnwatch/feedback/", {"label": "real"}).status_code == 404
    finally:
        bare.stop()


def test_answers_through_the_routes_move_the_precision_metrics(
    factory: GatewayFactory, gateway: GatewayProcess, slack: HTTPRecorder
) -> None:
    """Counted once per alert and label, by the alert's first reason; time to first answer once per alert."""
    (silent,) = published(factory, gateway, unique("silent"), reasons=("silent for 9 days (usually 1.2)",))
    (unhappy,) = published(
        factory, gateway, unique("csat"), reasons=("CSAT 2.1/5 over 3 ratings in 30 days",)
    )

    def answered(label: str, reason: str) -> float:
        return gateway.metric("churnwatch_feedback_alerts_answered_total", label=label, reason=reason)

    def first(le: str | None = None) -> float:
        if le is None:
            return gateway.metric("churnwatch_feedback_first_answer_seconds_count")
        return gateway.metric("churnwatch_feedback_first_answer_seconds_bucket", le=le)

    keys = [
        ("false-alarm", "silence"),
        ("real", "silence"),
        ("real", "low_csat"),
        ("false-alarm", "low_csat"),
    ]
    before = {key: answered(*key) for key in keys}
    firsts, within_30m, within_2h = first(), first("1800.0"), first("7200.0")

    click = interaction(silent, "false-alarm", slack.url_for("/actions/metrics"))
    for _ in range(2):  # the same click twice
        assert gateway.post("/slack/interactions", click, **slack_headers(click)).status_code == 200
    bearer = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
    for alert, label, user in (
        (silent, "false-alarm", "crm-bot"),  # agrees with the click: the alert is one false alarm
        (silent, "real", "bo"),  # disagrees: the alert also counts once as real
        (unhappy, "real", "ana"),
    ):
        body = {"alert_id": alert.idempotency_key, "label": label, "user": user}
        response = gateway.post("/churnwatch/feedback/", body, **bearer)
        assert response.status_code == 200, response.text

    # Every answer was acknowledged by Kafka before its 200, and counted before it: no waiting needed.
    moved = {key: answered(*key) - before[key] for key in keys}
    assert moved == {key: 1.0 for key in keys[:3]} | {keys[3]: 0.0}
    assert len(answers(factory, silent.account_id)) == 3
    # Both alerts were detected an hour (and a few seconds) before their first answers.
    assert first() - firsts == 2
    assert (first("1800.0") - within_30m, first("7200.0") - within_2h) == (0, 2)
