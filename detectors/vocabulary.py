"""The canonical events' vocabulary: event types, support and billing kinds, ticket priorities.

Each is a :class:`~enum.StrEnum`, so a member is its wire value (``BillingKind.PAYMENT_FAILED ==
"payment_failed"``, JSON writes the string). ``streams.events`` validates incoming events against them and the
detectors fold by them; they live here because ``detectors`` imports nothing from ``streams``.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """An event's ``type``, in the order of the per-type offsets and watermarks."""

    USAGE = "usage"
    SUPPORT = "support"
    BILLING = "billing"


class SupportKind(StrEnum):
    TICKET_OPENED = "ticket_opened"
    TICKET_SOLVED = "ticket_solved"
    CSAT = "csat"
    ESCALATED = "escalated"


class BillingKind(StrEnum):
    SUBSCRIPTION_CREATED = "subscription_created"
    PLAN_CHANGED = "plan_changed"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    # From the ingest gateway's Stripe mapping; folded for plan/MRR, not yet detector features.
    CANCELLATION_SCHEDULED = "cancellation_scheduled"
    TRIAL_ENDING = "trial_ending"
    DISPUTE_OPENED = "dispute_opened"


class Priority(StrEnum):
    """A support ticket's priority."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"
