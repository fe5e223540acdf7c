"""The OpenAPI 3.1 description of every gateway route (served at /openapi.json, checked in as
docs/ingest-openapi.json; a test keeps the two and the router in step)."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
SEGMENT_ROUTES = {
    "track": "A user action: a usage event of the account in context.groupId or the user's grouped account.",
    "page": "A page view: usage event 'page:<name>'.",
    "screen": "A mobile screen view: usage event 'screen:<name>'.",
    "identify": "User traits: no event; context.groupId assigns the user to an account.",
    "group": "Assigns the user to the account groupId; traits plan/mrr/seats make a plan_changed event.",
    "alias": "Accepted and ignored (counted as unknown_type).",
    "batch": "Up to the body limit of Segment messages, each with its 'type'; what Segment's SDKs send.",
}
WEBHOOKS = {
    "stripe": ("Stripe-Signature", "Stripe webhook events (signature checked by the stripe package, 300 s)."),
    "zendesk": (
        "X-Zendesk-Webhook-Signature",
        "Zendesk trigger webhook (HMAC-SHA256 of timestamp + body, base64; 300 s).",
    ),
    "intercom": ("X-Hub-Signature", "Intercom notification (sha1=<hex HMAC-SHA1 of the body>)."),
}


def _responses(*, auth: bool) -> dict[str, Any]:
    json_error = {"content": {"application/json": {"schema": ERROR}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "All events acknowledged by Kafka (items with no valid event dead-lettered).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        },
        "400": {"description": "Malformed JSON or not the route's shape.", **json_error},
        "404": {"description": "The route's secret is not configured."},
        "413": {"description": "Body over CHURNWATCH_INGEST_MAX_BODY_BYTES.", **json_error},
        "503": {
            "description": "Kafka did not acknowledge in time; retry after Retry-After seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            **json_error,
        },
    }
    if auth:
        responses["401"] = {
            "description": "Wrong or missing credentials, or a stale signature.",
            **json_error,
        }
    return responses


def _body() -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}


def _answer_paths() -> dict[str, Any]:
    """Answers to alerts (streams/gateway/feedback.py, docs/alerts.md)."""
    json_error = {"content": {"application/json": {"schema": ERROR}}}
    refusals = {
        "400": {"description": "Not an answer (malformed body, unknown label).", **json_error},
        "401": {"description": "Wrong, missing or stale signature / token.", **json_error},
        "404": {
            "description": "Route not configured, or the alert is not known to the gateway.",
            **json_error,
        },
        "413": {"description": "Body over CHURNWATCH_INGEST_MAX_BODY_BYTES.", **json_error},
        "503": {
            "description": "Kafka did not acknowledge in time; retry after Retry-After seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            **json_error,
        },
    }
    form = {"type": "object", "properties": {"payload": {"type": "string"}}, "required": ["payload"]}
    slack_headers = ("X-Slack-Signature", "X-Slack-Request-Timestamp")
    return {
        "/slack/interactions": {
            "post": {
                "summary": "Slack interactivity Request URL: answer buttons (signing secret, 300 s).",
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                    for name in slack_headers
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": form}},
                },
                "responses": {"200": {"description": "Answer recorded (empty body)."}, **refusals},
            }
        },
        "/churnwatch/feedback/": {
            "post": {
                "summary": "An answer to an alert from a CRM or tool (bearer token or Standard Webhooks).",
                "security": [{"feedbackToken": []}, {"standardWebhooks": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}},
                },
                "responses": {
                    "200": {
                        "description": "Answer recorded (duplicate: it repeated one recorded before).",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **refusals,
                },
            }
        },
    }


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI description of every route; long on purpose: it is data, one entry per route."""
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness.", "responses": {"200": {"description": "Serving."}}}},
        "/metrics": {
            "get": {"summary": "Prometheus metrics.", "responses": {"200": {"description": "Text format."}}}
        },
        "/openapi.json": {
            "get": {"summary": "This description.", "responses": {"200": {"description": "OpenAPI 3.1."}}}
        },
    }
    for kind, summary in SEGMENT_ROUTES.items():
        paths[f"/v1/{kind}"] = {
            "post": {
                "summary": summary,
                "security": [{"writeKey": []}],
                "requestBody": _body(),
                "responses": _responses(auth=True),
            }
        }
    for source, (header, summary) in WEBHOOKS.items():
        paths[f"/webhooks/{source}"] = {
            "post": {
                "summary": summary,
                "parameters": [
                    {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": _body(),
                "responses": _responses(auth=True),
            }
        }
    paths.update(_answer_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "churnwatch ingest gateway", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "writeKey": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "User name: the write key; password empty (or 'writeKey' in the body).",
                },
                "feedbackToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "CHURNWATCH_FEEDBACK_TOKEN.",
                },
                "standardWebhooks": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "Standard Webhooks signature (with webhook-id, webhook-timestamp) by "
                    "CHURNWATCH_FEEDBACK_WEBHOOK_SECRET.",
                },
            },
            "schemas": {
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "success": {"const": True},
                        "events": {"type": "integer"},
                        "dead_lettered": {"type": "integer"},
                        "ignored": {"type": "integer"},
                    },
                },
                "Answer": {
                    "type": "object",
                    "properties": {
                        "alert_id": {"type": "string", "description": "The alert's idempotency key."},
                        "account_id": {
                            "type": "string",
                            "description": "Without alert_id: its latest alert.",
                        },
                        "label": {"enum": ["real", "false-alarm", "handled", "snooze"]},
                        "user": {"type": "string"},
                        "note": {"type": "string", "maxLength": 1000},
                    },
                    "required": ["label"],
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "success": {"const": False},
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }
