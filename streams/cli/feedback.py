"""``churnwatch alerts feedback ACCOUNT --label ...``: answer an alert from a shell (registered in cli.py).

It sends the answer to the gateway's ``POST /churnwatch/feedback/`` with ``CHURNWATCH_FEEDBACK_TOKEN``, so a
shell answer is checked (unknown alert: refused) and deduplicated exactly like a Slack click.
"""

from __future__ import annotations

import getpass
from enum import StrEnum
from typing import Annotated

import httpx
import typer

from streams.cli.checks import UsageError
from streams.errors import ChurnwatchError
from streams.settings import Settings


class CliLabel(StrEnum):
    FALSE_ALARM = "false-alarm"
    REAL = "real"
    HANDLED = "handled"


class FeedbackRefused(ChurnwatchError):
    """The gateway did not record the answer."""


def send_feedback(settings: Settings, gateway: str, body: dict[str, str], client: httpx.Client) -> str:
    """POST the answer; the line to print, or :class:`FeedbackRefused` with the gateway's reason."""
    if settings.feedback.token is None:
        raise UsageError("set CHURNWATCH_FEEDBACK_TOKEN (the gateway's token for /churnwatch/feedback/)")
    url = gateway.rstrip("/") + "/churnwatch/feedback/"
    headers = {"Authorization": f"Bearer {settings.feedback.token.get_secret_value()}"}
    try:
        response = client.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise FeedbackRefused(f"cannot reach the gateway at {gateway} ({type(exc).__name__})") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200 or not isinstance(answer, dict):
        reason = answer.get("message") if isinstance(answer, dict) else None
        raise FeedbackRefused(
            f"the gateway answered {response.status_code}: {reason or response.reason_phrase}"
        )
    again = " (already recorded)" if answer.get("duplicate") else ""
    return f"recorded {answer['label']} for {answer['account_id']} (alert {answer['alert_id']}){again}"


def alerts_feedback(
    account: Annotated[str, typer.Argument(help="Account id.")],
    label: Annotated[CliLabel, typer.Option("--label", help="What the alert was.")],
    alert: Annotated[
        str | None, typer.Option("--alert", help="Alert id (idempotency key); default: the latest alert.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Who answers (default: your login).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A short note kept with the answer.")] = None,
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="Gateway URL (default: http://CHURNWATCH_INGEST_LISTEN).")
    ] = None,
) -> None:
    """Answer an account's alert: real risk, false alarm or handled."""
    from streams.cli.main import _settings

    settings = _settings()
    body = {"account_id": account, "label": label.value, "user": user or getpass.getuser()}
    if alert is not None:
        body["alert_id"] = alert
    if note is not None:
        body["note"] = note
    with httpx.Client(timeout=30) as client:
        line = send_feedback(settings, gateway or f"http://{settings.ingest.listen}", body, client)
    typer.echo(line)
