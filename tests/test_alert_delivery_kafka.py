"""Alert delivery from the outbox topic to real local HTTP receivers, across failures and restarts."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from detectors.alerts import Alert, Transition
from tests.http_recorder import HTTPRecorder
from tests.kafka_harness import (
    WorkerFactory,
    make_alert,
    metric_value,
    read_topic,
    run,
    wait_outbox_committed,
    wait_until,
)

pytestmark = pytest.mark.kafka

SECRET = "whsec_" + base64.b64encode(b"churnwatch-test-signing-key-0001").decode()


def outbox(workers: WorkerFactory, alerts: list[Alert]) -> None:
    topic = workers.settings().topics.alerts
    workers.produce((topic, a.account_id.encode(), orjson.dumps(a.to_dict())) for a in alerts)


def configure_sinks(workers: WorkerFactory, crm: HTTPRecorder, slack: HTTPRecorder, tmp_path: Path) -> Path:
    jsonl = tmp_path / "alerts.jsonl"
    workers.extra_env.update(
        CHURNWATCH_WEBHOOK_URL=crm.url_for("/hooks/crm-secret-path"),
        CHURNWATCH_WEBHOOK_SECRET=SECRET,
        CHURNWATCH_SLACK_WEBHOOK_URL=slack.url_for("/services/T000/B000/slack-secret-token"),
        CHURNWATCH_ALERTS_JSONL_PATH=str(jsonl),
        CHURNWATCH_DELIVERY_BASE_DELAY_SECONDS="0.2",
        CHURNWATCH_DELIVERY_MAX_DELAY_SECONDS="1",
    )
    return jsonl


def test_flaky_receivers_get_each_alert_once_signed(workers: WorkerFactory, tmp_path: Path) -> None:
    with HTTPRecorder([500, 500, (429, {"Retry-After": "1"}), 200]) as crm, HTTPRecorder() as slack:
        jsonl = configure_sinks(workers, crm, slack, tmp_path)
        worker = workers.start()
        outbox(workers, [make_alert("acme")])
        requests = crm.wait_for_sync(4, timeout=60)
        succeeded = [r for r in crm.requests if r.reply.status == 200]
        assert len(succeeded) == 1
        # Every attempt carries the same id, so a receiver can dedupe; the signature verifies independently.
        assert {r.header("webhook-id") for r in requests} == {"acme:1795600000000:opened"}
        body = Webhook(SECRET).verify(succeeded[0].body, {k: v for k, v in succeeded[0].headers.items()})
        assert body["account_id"] == "acme" and body["revenue_at_risk"] == pytest.approx(0.4 * 199.0)
        assert slack.wait_for_sync(1, timeout=30)[0].json()["blocks"][0]["type"] == "header"
        wait_until(
            lambda: jsonl.exists() and jsonl.read_text().count("\n") == 1, timeout=30, what="jsonl line"
        )

        # The same alert again (a detector replay after a crash would do this): suppressed by the ledger,
        # also by a new worker process that only knows the ledger from its changelog. The outbox offset is
        # checkpointed first: a stop in the middle of the batch (after the jsonl line, before its checkpoint)
        # has the new worker read the first alert again too, and suppress it (2 duplicates, rightly).
        wait_outbox_committed(workers, timeout=30)
        worker.stop()
        restarted = workers.start()
        outbox(workers, [make_alert("acme"), make_alert("acme", transition=Transition.ESCALATED, risk=0.7)])
        wait_until(
            lambda: sum(r.reply.status == 200 for r in crm.requests) == 2, timeout=60, what="escalation"
        )
        metrics = restarted.get("/metrics").text
        try:
            wait_until(
                lambda: "churnwatch_alert_duplicates_suppressed_total 1.0" in restarted.get("/metrics").text,
                timeout=30,
                what="duplicate counted",
            )
        except AssertionError as error:  # failed once in CI (2026-12-05): say what the count and the CRM saw
            text = restarted.get("/metrics").text
            count = metric_value(text, "churnwatch_alert_duplicates_suppressed_total")
            seen = [(r.header("webhook-id"), r.reply.status) for r in crm.requests]
            raise AssertionError(f"{error}; suppressed count {count}, CRM requests {seen}") from None
        assert [r.header("webhook-id") for r in crm.requests if r.reply.status == 200] == [
            "acme:1795600000000:opened",
            "acme:1795600000000:escalated:high",
        ]
        assert len(slack.requests) == 2
        assert jsonl.read_text().count("\n") == 2
        assert "churnwatch_alert_delivery_retries_total" in metrics
        assert "crm-secret-path" not in worker.log() + restarted.log()
        assert "slack-secret-token" not in worker.log() + restarted.log()


def test_alerts_written_while_no_worker_runs_are_delivered_once_later(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    with HTTPRecorder() as crm, HTTPRecorder() as slack:
        configure_sinks(workers, crm, slack, tmp_path)
        first = workers.start()
        first.kill()  # kill -9: the outbox is all that remains
        outbox(workers, [make_alert(f"acct-{i}") for i in range(5)])
        workers.start()
        crm.wait_for_sync(5, timeout=60)
        ids = [r.header("webhook-id") or "" for r in crm.requests]
        assert sorted(ids) == sorted(f"acct-{i}:1795600000000:opened" for i in range(5))
        # Five alerts at once reach Slack as one digest, not five messages.
        wait_until(lambda: len(slack.requests) >= 1, timeout=30, what="slack digest")
        assert len(slack.requests) == 1
        assert "5" in slack.requests[0].json()["text"]


def test_permanent_failures_are_dead_lettered_with_the_reason(workers: WorkerFactory, tmp_path: Path) -> None:
    with HTTPRecorder(default=400) as crm, HTTPRecorder() as slack:
        configure_sinks(workers, crm, slack, tmp_path)
        workers.start()
        outbox(workers, [make_alert("bad-hook")])
        topic = workers.settings().topics.deadletter
        dead = run(read_topic(workers.kafka.bootstrap, topic, expected=1))
        assert len(dead) == 1
        headers = dict(dead[0].headers)
        assert headers["churnwatch.error.sink"] == b"webhook"
        assert b"400" in headers["churnwatch.error.reason"]
        assert orjson.loads(dead[0].value)["idempotency_key"] == "bad-hook:1795600000000:opened"
        assert len(crm.requests) == 1  # 4xx is permanent: no retry
        assert len(slack.requests) == 1  # the other sink still got it


def test_snoozed_account_is_not_notified(workers: WorkerFactory, tmp_path: Path) -> None:
    import subprocess
    import sys

    with HTTPRecorder() as crm, HTTPRecorder() as slack:
        configure_sinks(workers, crm, slack, tmp_path)
        workers.start()
        snooze = subprocess.run(
            [sys.executable, "-m", "streams", "alerts", "snooze", "quiet-co", "--for", "7d"],
            env=workers.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert snooze.returncode == 0, snooze.stderr
        outbox(workers, [make_alert("quiet-co"), make_alert("loud-co")])
        crm.wait_for_sync(1, timeout=60)
        wait_until(lambda: len(slack.requests) == 1, timeout=30, what="slack message")
        assert [r.header("webhook-id") for r in crm.requests] == ["loud-co:1795600000000:opened"]
        assert "quiet-co" not in slack.requests[0].body.decode()


def test_alerts_test_command_reports_the_outcome(workers: WorkerFactory, tmp_path: Path) -> None:
    import subprocess
    import sys

    with HTTPRecorder([503]) as crm, HTTPRecorder([404]) as slack:
        configure_sinks(workers, crm, slack, tmp_path)
        ok = subprocess.run(
            [sys.executable, "-m", "streams", "alerts", "test", "webhook"],
            env=workers.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ok.returncode == 0 and "delivered (2 attempts)" in ok.stdout, ok.stdout + ok.stderr
        Webhook(SECRET).verify(crm.requests[-1].body, dict(crm.requests[-1].headers))
        failed = subprocess.run(
            [sys.executable, "-m", "streams", "alerts", "test", "slack"],
            env=workers.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert failed.returncode == 1 and "404" in failed.stdout
        assert "slack-secret-token" not in failed.stdout + failed.stderr
