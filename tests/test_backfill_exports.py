"""Segment and Stripe exports fold into the same states as the canonical events the gateway maps them to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from streams.offline.backfill import Row, fold_history, plan_identities
from streams.offline.backfill_exports import ExportFormat
from streams.settings import load_settings
from tests.test_cli_errors import env_without_config, refused, run

DAY = 86_400
T0 = 1_772_323_200  # 2026-03-01T00:00:00Z


def at(day: int, hour: int = 10) -> str:
    return f"2026-03-{day:02d}T{hour:02d}:00:00Z"


def write(path: Path, items: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


def test_a_segment_export_folds_as_its_canonical_events(tmp_path: Path) -> None:
    group = {
        "type": "group",
        "userId": "u1",
        "groupId": "acme",
        "traits": {"plan": "pro", "mrr": 99, "seats": 5},
        "timestamp": at(1, 9),
        "messageId": "g1",
    }
    tracks = [
        {
            "type": "track",
            "userId": "u1",
            "event": "report_exported",
            "timestamp": at(d),
            "messageId": f"t{d}",
        }
        for d in range(1, 15)
    ]
    export = [
        group,
        *tracks[:7],
        {"batch": tracks[7:]},  # a tracking API body
        {"type": "identify", "userId": "u2", "context": {"groupId": "globex"}, "timestamp": at(2)},
        {"type": "page", "userId": "u2", "name": "Billing", "timestamp": at(3), "messageId": "p1"},
        {"type": "track", "userId": "stranger", "event": "login", "timestamp": at(3), "messageId": "x1"},
        {"type": "track", "userId": "u1", "event": "login", "messageId": "x2"},  # no time: history has no now
        {"type": "alias", "userId": "u1", "previousId": "anon", "timestamp": at(3)},
    ]
    canonical = [
        {
            "type": "billing",
            "account_id": "acme",
            "ts": at(1, 9),
            "event_id": "segment:g1",
            "kind": "plan_changed",
            "plan": "pro",
            "mrr": 99,
            "seats": 5,
        },
        *(
            {
                "type": "usage",
                "account_id": "acme",
                "ts": at(d),
                "event_id": f"segment:t{d}",
                "event": "report_exported",
                "user_id": "u1",
                "count": 1,
            }
            for d in range(1, 15)
        ),
        {
            "type": "usage",
            "account_id": "globex",
            "ts": at(3),
            "event_id": "segment:p1",
            "event": "page:Billing",
            "user_id": "u2",
            "count": 1,
        },
    ]
    settings = load_settings()
    exported = fold_history(
        [write(tmp_path / "segment.jsonl", export)], settings, export=ExportFormat.SEGMENT
    )
    expected = fold_history([write(tmp_path / "canonical.jsonl", canonical)], settings)
    assert exported.rows == expected.rows and set(exported.rows) == {b"acme", b"globex"}
    stats = exported.export_stats
    assert stats is not None
    assert (stats.items, stats.events) == (len(export) - 1 + 7, len(canonical) + 1)  # + the timeless track
    assert stats.rejected == {"no_account": 1} and stats.ignored == {"unknown_type": 1}
    assert exported.input_stats.bad_reasons() == {"invalid_ts": 1}
    # What the export taught about users, for the gateway's identities topic (a user it maps keeps it).
    assert exported.identities == {"u1": "acme", "u2": "globex"}
    assert plan_identities(exported, {b"u2": b"initech"}) == [Row(None, b"u1", b"acme")]


def price(cents: int) -> dict[str, Any]:
    return {"unit_amount": cents, "currency": "usd", "recurring": {"interval": "month"}, "nickname": "team"}


def stripe_event(n: int, kind: str, obj: dict[str, Any], day: int) -> dict[str, Any]:
    return {
        "id": f"evt_{n}",
        "object": "event",
        "type": kind,
        "created": T0 + (day - 1) * DAY,
        "data": {"object": obj},
    }


def test_a_stripe_export_folds_as_its_canonical_events(tmp_path: Path) -> None:
    subscription = {"customer": "cus_1", "items": {"data": [{"price": price(2500), "quantity": 4}]}}
    events = [
        stripe_event(1, "customer.subscription.created", subscription, 1),
        stripe_event(2, "invoice.payment_failed", {"customer": "cus_1"}, 10),
        stripe_event(3, "customer.created", {"id": "cus_1"}, 1),  # maps to nothing
        stripe_event(4, "invoice.paid", {"customer": "cus_2", "metadata": {"account_id": "initech"}}, 12),
        stripe_event(5, "invoice.paid", {}, 12),  # no customer: set aside
    ]
    # Newest first, as Stripe lists events; one list page, then a plain event per line.
    export = [{"object": "list", "data": events[:3][::-1], "has_more": False}, *events[3:], {"id": "evt_9"}]
    accounts = tmp_path / "accounts.json"
    accounts.write_text('{"cus_1": "acme"}')

    def billing(n: int, account: str, day: int, kind: str, **fields: Any) -> dict[str, Any]:
        ts = (T0 + (day - 1) * DAY) * 1000
        return {
            "type": "billing",
            "account_id": account,
            "ts": ts,
            "event_id": f"stripe:evt_{n}",
            "kind": kind,
            **fields,
        }

    canonical = [
        billing(1, "acme", 1, "subscription_created", mrr=100.0, plan="team"),
        billing(2, "acme", 10, "payment_failed"),
        billing(4, "initech", 12, "payment_succeeded"),
    ]
    settings = load_settings(stripe_account_map=accounts)
    exported = fold_history([write(tmp_path / "stripe.jsonl", export)], settings, export=ExportFormat.STRIPE)
    expected = fold_history([write(tmp_path / "canonical.jsonl", canonical)], settings)
    assert exported.rows == expected.rows and set(exported.rows) == {b"acme", b"initech"}
    stats = exported.export_stats
    assert stats is not None and (stats.items, stats.events) == (6, 3)
    assert stats.ignored == {"unknown_type": 1}
    assert stats.rejected == {"no_account": 1, "invalid_body": 1}


def test_cli_format_names_the_choices() -> None:
    done = run("backfill", "--format", "mixpanel", "x.jsonl", env=env_without_config())
    assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
    assert "canonical" in done.stderr and "segment" in done.stderr and "stripe" in done.stderr
    refused(run("backfill", "--format", "stripe", "missing.jsonl"), "missing.jsonl", "no such file")
