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


def openapi_spec() -> dict[str, Any]:
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
                }
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
