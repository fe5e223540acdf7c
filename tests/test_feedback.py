"""Answer buttons on Slack alerts, the Feedback record, the gateway's parsing and alert index (no broker)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from detectors.alerts import Alert, AlertKind, Severity, Transition
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource
from streams.gateway.alert_index import AlertIndex
from streams.gateway.feedback import answered_blocks, parse_api, parse_slack
from streams.gateway.model import RequestError
from streams.sinks.slack_blocks import render_alert, render_digest
from tests.kafka_harness import make_alert


def actions_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b["type"] == "actions"]


def click(message: dict[str, Any], action: dict[str, Any], user: str = "ana") -> bytes:
    payload = {"type": "block_actions", "user": {"id": "U1", "username": user}, "actions": [action]}
    payload |= {"response_url": "https://hooks.slack.com/actions/x", "message": message}
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def test_alert_message_has_four_answer_buttons_carrying_the_alert_id() -> None:
    alert = make_alert("acme")
    (block,) = actions_of(render_alert(alert))
    buttons = block["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Real risk", "False alarm", "Handled", "Snooze 14 d"]
    assert {b["value"] for b in buttons} == {alert.idempotency_key}
    assert len({b["action_id"] for b in buttons}) == 4


def test_pipeline_incidents_and_oversized_ids_get_no_buttons() -> None:
    incident = replace(make_alert("kafka-lag"), kind=AlertKind.PIPELINE_INCIDENT)
    assert actions_of(render_alert(incident)) == []
    huge = replace(make_alert("acme"), episode_id="x" * 2_100)
    assert actions_of(render_alert(huge)) == []
    digest = render_digest([huge, *[make_alert(f"a{i}") for i in range(4)]])
    menus = [block["accessory"] for block in digest["blocks"] if "accessory" in block]
    assert len(menus) == 4 and "xxx" not in orjson.dumps(menus).decode()


@pytest.mark.parametrize("label", list(FeedbackLabel))
def test_each_button_parses_back_to_its_answer(label: FeedbackLabel) -> None:
    alert = make_alert("acme")
    message = render_alert(alert)
    (block,) = actions_of(message)
    button = next(b for b in block["elements"] if b["action_id"].endswith("." + label.value))
    action = parse_slack(click(message, button))
    assert action is not None
    assert (action.answer.label, action.answer.alert_id, action.answer.user) == (
        label,
        alert.idempotency_key,
        "ana",
    )


def test_digest_overflow_options_parse_back_and_the_update_marks_only_that_line() -> None:
    alerts = [make_alert(f"acct-{i}") for i in range(5)]
    digest = render_digest(alerts)
    menus = [b["accessory"] for b in digest["blocks"] if "accessory" in b]
    assert len(menus) == 5 and len({m["action_id"] for m in menus}) == 5
    option = menus[3]["options"][1]
    action = parse_slack(click(digest, {**menus[3], "selected_option": option}))
    assert action is not None and action.answer.label is FeedbackLabel.FALSE_ALARM
    answered = action.answer.alert_id
    assert answered in {a.idempotency_key for a in alerts}
    blocks = answered_blocks(digest["blocks"], str(answered), "marked false alarm by @ana")
    assert len(blocks) == len(digest["blocks"]) and sum("accessory" in b for b in blocks) == 4
    assert sum("marked false alarm by @ana" in b.get("text", {}).get("text", "") for b in blocks) == 1


def test_other_interactions_are_ignored_and_bad_bodies_refused() -> None:
    other = urlencode({"payload": orjson.dumps({"type": "view_submission"}).decode()}).encode()
    assert parse_slack(other) is None
    for body in (b"payload=%7Bnot-json", b"nothing=1", b"\xff\xfe"):
        with pytest.raises(RequestError) as caught:
            parse_slack(body)
        assert caught.value.status == 400
    unknown = {"action_id": "churnwatch.feedback.maybe", "value": "a:1:opened", "type": "button"}
    with pytest.raises(RequestError):
        parse_slack(click({}, unknown))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[1]", "JSON object"),
        (b'{"label": "real"}', "name the alert"),
        (b'{"account_id": "a", "label": "meh"}', "'label' must be one of"),
        (b'{"account_id": "a", "label": "real", "note": 5}', "non-empty text"),
        (b"{", "malformed JSON"),
    ],
)
def test_api_body_errors_name_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_api(body)
    assert caught.value.status == 400 and problem in caught.value.message


def test_feedback_record_round_trips_and_snooze_lasts_14_days() -> None:
    answer = Feedback(
        account_id="acme",
        alert_id="acme:1:opened",
        label=FeedbackLabel.SNOOZE,
        user="ana",
        source=FeedbackSource.SLACK,
        answered_ts_ms=1_000,
    )
    assert Feedback.from_bytes(answer.to_bytes()) == answer
    assert answer.snooze_until_ms == 1_000 + 14 * 86_400_000


def test_alert_index_forgets_old_and_excess_alerts() -> None:
    now = [100_000]
    index = AlertIndex(max_alerts=3, memory_ms=10_000, clock_ms=lambda: now[0])

    def alert(account: str, n: int, detected: int) -> dict[str, object]:
        return Alert(
            kind=AlertKind.ACCOUNT_RISK,
            account_id=account,
            episode_id=f"{account}:{n}",
            transition=Transition.OPENED,
            severity=Severity.LOW,
            risk=0.2,
            event_ts_ms=detected,
            detected_ts_ms=detected,
        ).to_dict()

    for n in range(4):
        index.add_alert(alert("a", n, 95_000 + n))
    assert len(index) == 3 and index.find("a:0:opened") is None and index.latest("a") == "a:3:opened"
    now[0] = 105_002  # a:1 (95_001) is now older than 10 s; a:2 and a:3 are not
    assert index.find("a:1:opened") is None and index.find("a:2:opened") is not None
    index.add_alert({"type": "snooze", "account_id": "a", "until_ms": 1})  # not an alert: skipped
    assert index.latest("a") == "a:3:opened" and len(index) == 2
