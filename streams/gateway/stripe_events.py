"""Stripe webhooks to billing events, verified with the ``stripe`` package (5-minute tolerance).

The account is the object's ``metadata.account_id``, else the customer's entry in
``CHURNWATCH_STRIPE_ACCOUNT_MAP``, else the Stripe customer id (``cus_...``). The canonical ``event_id`` is
Stripe's event id (prefixed ``stripe:``): Stripe retries for days, and every copy carries the same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import stripe

from detectors.vocabulary import BillingKind, EventType
from streams.gateway.model import Mapped, Rejection, RequestError

TOLERANCE_S = 300
ID_PREFIX = "stripe:"
# Currencies whose amounts Stripe gives in whole units, not cents.
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
PER_MONTH = {"day": 365 / 12, "week": 52 / 12, "month": 1.0, "year": 1 / 12}  # intervals per month
SIMPLE_KINDS = {
    "invoice.payment_failed": BillingKind.PAYMENT_FAILED,
    "invoice.paid": BillingKind.PAYMENT_SUCCEEDED,
    "customer.subscription.created": BillingKind.SUBSCRIPTION_CREATED,
    "customer.subscription.deleted": BillingKind.SUBSCRIPTION_CANCELED,
    "customer.subscription.trial_will_end": BillingKind.TRIAL_ENDING,
    "charge.dispute.created": BillingKind.DISPUTE_OPENED,
}
SUBSCRIPTION_KINDS = frozenset(
    {BillingKind.SUBSCRIPTION_CREATED, BillingKind.SUBSCRIPTION_CANCELED, BillingKind.TRIAL_ENDING}
)


def verify(payload: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """The event of a correctly signed, fresh payload; else a 401 (400 for a body that is not JSON)."""
    try:
        stripe.Webhook.construct_event(payload, header or "", secret, tolerance=TOLERANCE_S)
    except stripe.SignatureVerificationError as exc:
        if "tolerance" in str(exc):
            raise RequestError(401, Rejection.EXPIRED, "signature timestamp outside 300 s") from None
        raise RequestError(401, Rejection.UNAUTHORIZED, "wrong or missing Stripe-Signature") from None
    except ValueError:
        raise RequestError(400, Rejection.INVALID_JSON, "body is not JSON") from None
    event = orjson.loads(payload)
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise RequestError(400, Rejection.INVALID_BODY, "not a Stripe event object")
    return event


def monthly_amount(subscription: Mapping[str, Any]) -> float | None:
    """MRR of a subscription object: sum of price x quantity over its items, per month, in currency units.

    >>> monthly_amount({"items": {"data": [
    ...     {"quantity": 3, "price": {"unit_amount": 2000, "currency": "usd",
    ...                               "recurring": {"interval": "month"}}},
    ...     {"quantity": 1, "price": {"unit_amount": 24000, "currency": "usd",
    ...                               "recurring": {"interval": "year", "interval_count": 1}}}]}})
    80.0
    """
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    if not isinstance(data, list):
        return None
    total = 0.0
    for item in data:
        price = (item.get("price") or item.get("plan") or {}) if isinstance(item, dict) else {}
        amount = price.get("unit_amount", price.get("amount"))
        recurring = price.get("recurring") or price  # legacy plans carry interval themselves
        interval = recurring.get("interval", "month")
        if not isinstance(amount, int | float) or interval not in PER_MONTH:
            continue
        count = recurring.get("interval_count") or 1
        quantity = item.get("quantity")
        minor = 1 if str(price.get("currency", "")).lower() in ZERO_DECIMAL else 100
        per_month = amount / minor * PER_MONTH[interval] / count
        total += per_month * (quantity if isinstance(quantity, int) else 1)
    return round(total, 2)


def plan_name(subscription: Mapping[str, Any]) -> str | None:
    """The first item's price nickname, lookup key or id."""
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    price = data[0].get("price") or data[0].get("plan") or {}
    for name in ("nickname", "lookup_key", "id"):
        if isinstance(price.get(name), str) and price[name]:
            return str(price[name])[:128]
    return None


def account_of(obj: Mapping[str, Any], account_map: Mapping[str, str]) -> str | None:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("account_id"), str) and metadata["account_id"]:
        return str(metadata["account_id"])
    customer = obj.get("customer")
    charge = obj.get("charge")
    if customer is None and isinstance(charge, dict):  # a dispute with its charge expanded
        customer = charge.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if not isinstance(customer, str) or not customer:
        return None
    return account_map.get(customer, customer)


def _subscription_change(obj: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fields of the billing event a ``customer.subscription.updated`` makes, None when nothing we track."""
    if "cancel_at_period_end" in previous and obj.get("cancel_at_period_end") is True:
        return {
            "kind": BillingKind.CANCELLATION_SCHEDULED,
            "mrr": monthly_amount(obj),
            "plan": plan_name(obj),
        }
    if not {"items", "quantity", "plan", "cancel_at_period_end"} & previous.keys():
        return None
    mrr = monthly_amount(obj)
    before = monthly_amount({**obj, **previous})
    change = "reactivated" if "cancel_at_period_end" in previous else "unchanged"
    if mrr is not None and before is not None and mrr != before:
        change = "upgrade" if mrr > before else "downgrade"
    return {
        "kind": BillingKind.PLAN_CHANGED,
        "mrr": mrr,
        "plan": plan_name(obj),
        "change": change,
        "previous_mrr": before,
    }


def map_event(event: dict[str, Any], account_map: Mapping[str, str]) -> Mapped:
    """The billing event (if any) of one verified Stripe event."""
    mapped = Mapped()
    event_type = event.get("type")
    data = event["data"]
    obj = data.get("object") if isinstance(data.get("object"), dict) else {}
    previous = data.get("previous_attributes") or {}
    if event_type == "customer.subscription.updated":
        fields = _subscription_change(obj, previous if isinstance(previous, dict) else {})
        if fields is None:
            mapped.ignored.append(Rejection.UNKNOWN_TYPE)
            return mapped
    elif event_type in SIMPLE_KINDS:
        kind = SIMPLE_KINDS[str(event_type)]
        fields = {"kind": kind}
        if kind in SUBSCRIPTION_KINDS:
            fields |= {
                "mrr": 0.0 if kind is BillingKind.SUBSCRIPTION_CANCELED else monthly_amount(obj),
                "plan": plan_name(obj),
            }
    else:
        mapped.ignored.append(Rejection.UNKNOWN_TYPE)
        return mapped
    account_id = account_of(obj, account_map)
    if account_id is None:
        mapped.dead_letter(Rejection.NO_ACCOUNT, f"{event_type}: no customer or metadata.account_id", event)
        return mapped
    created = event.get("created")
    body: dict[str, Any] = {
        "type": EventType.BILLING,
        "account_id": account_id,
        "ts": created * 1000 if isinstance(created, int) else None,
        "event_id": ID_PREFIX + str(event.get("id")),
        **{name: value for name, value in fields.items() if value is not None},
    }
    mapped.events.append(body)
    return mapped
