"""The docs agree with the code: event schemas in docs/events.md, settings in docs/configuration.md."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from detectors.vocabulary import BillingKind, Priority, SupportKind
from streams.events import (
    EVENT_TYPES,
    MAX_COUNT,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MIN_TS_MS,
    BillingEvent,
    DeadLetterReason,
    InvalidEventError,
    SupportEvent,
    UsageEvent,
    validate,
)
from streams.settings import settings_table

DOCS = Path(__file__).resolve().parent.parent / "docs"
EVENTS_MD = DOCS / "events.md"
CONFIGURATION_MD = DOCS / "configuration.md"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# The issue's canonical examples, one per type, with every optional field.
CANONICAL = {
    "usage": {
        "type": "usage",
        "account_id": "acme",
        "ts": "2026-11-26T10:00:00Z",
        "event": "report_exported",
        "user_id": "u1",
        "count": 1,
    },
    "support": {
        "type": "support",
        "account_id": "acme",
        "ts": "2026-11-26T10:00:00Z",
        "kind": "csat",
        "priority": "normal",
        "score": 5,
    },
    "billing": {
        "type": "billing",
        "account_id": "acme",
        "ts": "2026-11-26T10:00:00Z",
        "kind": "plan_changed",
        "mrr": 99.0,
        "plan": "pro",
    },
}


# -- docs/events.md -----------------------------------------------------------------------------------------


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def load_schemas() -> dict[str, dict[str, Any]]:
    text = EVENTS_MD.read_text()
    section = text[text.index("## JSON Schemas") :]
    schemas = [json.loads(block) for block in fenced_blocks(section, "json")]
    by_type = {schema["properties"]["type"]["const"]: schema for schema in schemas}
    assert len(by_type) == len(schemas), "one schema per event type"
    return by_type


SCHEMAS = load_schemas()


def _is_type(value: Any, name: str) -> bool:
    # Stricter than JSON Schema for integers (1.0 is not one), as streams.events is.
    checks: dict[str, Any] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return bool(checks[name](value))


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """A tiny validator for the subset of JSON Schema 2020-12 the docs use (jsonschema: no dependency)."""
    known = {
        "$schema", "$id", "title", "description", "format", "default", "type", "const", "enum", "required",
        "properties", "additionalProperties", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMaximum", "pattern", "oneOf", "if", "then",
    }  # fmt: skip
    assert set(schema) <= known, f"unsupported keywords {set(schema) - known}"
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, name) for name in names):
            return [f"{value!r} is not of type {names}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{value!r} is not {schema['const']!r}")
    if "enum" in schema and not any(
        value == option and type(value) is type(option) for option in schema["enum"]
    ):
        errors.append(f"{value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{value!r} has the wrong length")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{value!r} does not match {schema['pattern']}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{value!r} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{value!r} > {schema['maximum']}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errors.append(f"{value!r} >= {schema['exclusiveMaximum']}")
    if "oneOf" in schema:
        matching = sum(not schema_errors(option, value) for option in schema["oneOf"])
        if matching != 1:
            errors.append(f"{value!r} matches {matching} of oneOf")
    if isinstance(value, dict):
        errors.extend(f"missing {name!r}" for name in schema.get("required", []) if name not in value)
        for name, subschema in schema.get("properties", {}).items():
            if name in value:
                errors.extend(f"{name}: {error}" for error in schema_errors(subschema, value[name]))
        if schema.get("additionalProperties", True) is not True:
            errors.append("additionalProperties other than true is not supported here")
    if "if" in schema and not schema_errors(schema["if"], value):
        errors.extend(schema_errors(schema["then"], value))
    return errors


def test_one_draft_2020_12_schema_per_event_type() -> None:
    assert sorted(SCHEMAS) == sorted(EVENT_TYPES)
    for event_type, schema in SCHEMAS.items():
        assert schema["$schema"] == DRAFT_2020_12
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is True, "extra fields are accepted"
        assert set(schema["required"]) <= set(schema["properties"]), event_type


def required_by_validate(body: dict[str, Any]) -> set[str]:
    """Fields whose absence validate() reports as missing_field, found by dropping each in turn."""
    validate(body)
    required = set()
    for name in body:
        try:
            validate({key: value for key, value in body.items() if key != name})
        except InvalidEventError as exc:
            assert exc.reason is DeadLetterReason.MISSING_FIELD, (name, exc)
            required.add(name)
    return required


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_required_fields_match_validate(event_type: str) -> None:
    body = dict(CANONICAL[event_type])
    if event_type == "support":
        body["kind"] = "ticket_opened"  # score is only conditionally required
    assert set(SCHEMAS[event_type]["required"]) == required_by_validate(body)


def test_csat_score_condition_matches_validate() -> None:
    schema = SCHEMAS["support"]
    assert schema["if"] == {"properties": {"kind": {"const": "csat"}}}
    assert "score" in schema["then"]["required"]
    assert required_by_validate(CANONICAL["support"]) == {"type", "account_id", "ts", "kind", "score"}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_properties_cover_event_fields(event_type: str) -> None:
    classes = {"usage": UsageEvent, "support": SupportEvent, "billing": BillingEvent}
    event_class = typing.cast(type[msgspec.Struct], classes[event_type])
    fields = {field.encode_name for field in msgspec.structs.fields(event_class)} | {"type"}
    assert set(SCHEMAS[event_type]["properties"]) == fields


def test_enums_match_constants() -> None:
    support = SCHEMAS["support"]["properties"]
    assert support["kind"]["enum"] == sorted(SupportKind)
    assert [p for p in support["priority"]["enum"] if p is not None] == list(Priority)
    assert SCHEMAS["billing"]["properties"]["kind"]["enum"] == sorted(BillingKind)
    for event_type, schema in SCHEMAS.items():
        assert schema["properties"]["type"] == {"const": event_type}


def test_limits_match_constants() -> None:
    for schema in SCHEMAS.values():
        props = schema["properties"]
        assert props["account_id"]["maxLength"] == MAX_ID_LENGTH
        assert props["account_id"]["minLength"] == 1
        assert [option["type"] for option in props["ts"]["oneOf"]] == ["string", "integer"]
        assert props["ts"]["oneOf"][1]["minimum"] == MIN_TS_MS
    usage = SCHEMAS["usage"]["properties"]
    assert (usage["event"]["minLength"], usage["event"]["maxLength"]) == (1, MAX_NAME_LENGTH)
    assert usage["user_id"]["maxLength"] == MAX_ID_LENGTH
    assert (usage["count"]["minimum"], usage["count"]["maximum"], usage["count"]["default"]) == (
        1,
        MAX_COUNT,
        1,
    )
    support = SCHEMAS["support"]["properties"]
    assert (support["score"]["minimum"], support["score"]["maximum"]) == (1, 5)
    assert SCHEMAS["billing"]["properties"]["plan"]["maxLength"] == MAX_NAME_LENGTH


def test_canonical_examples_match_schemas() -> None:
    for event_type, body in CANONICAL.items():
        validate(body)
        assert schema_errors(SCHEMAS[event_type], body) == []


def test_examples_in_the_doc_are_valid() -> None:
    lines = [line for block in fenced_blocks(EVENTS_MD.read_text(), "jsonl") for line in block.splitlines()]
    assert len(lines) >= 3
    for line in lines:
        body = json.loads(line)
        validate(body)
        assert schema_errors(SCHEMAS[body["type"]], body) == []


# Bodies validate() rejects that the schemas must reject too (the doc's three stated gaps excepted).
REJECTED = [
    {**CANONICAL["usage"], "event": ""},
    {**CANONICAL["usage"], "count": 0},
    {**CANONICAL["usage"], "count": True},
    {**CANONICAL["usage"], "user_id": 7},
    {**CANONICAL["usage"], "ts": "2026-11-26T10:00:00"},
    {**CANONICAL["usage"], "ts": 1_795_687_200},
    {**CANONICAL["usage"], "account_id": "a" * (MAX_ID_LENGTH + 1)},
    {key: value for key, value in CANONICAL["usage"].items() if key != "event"},
    {**CANONICAL["support"], "kind": "ticket_reopened"},
    {**CANONICAL["support"], "priority": "p1"},
    {**CANONICAL["support"], "score": 6},
    {key: value for key, value in CANONICAL["support"].items() if key != "score"},
    {**CANONICAL["billing"], "mrr": -1},
    {**CANONICAL["billing"], "mrr": "99"},
    {**CANONICAL["billing"], "plan": ""},
    {**CANONICAL["billing"], "kind": "refund"},
]


@pytest.mark.parametrize("body", REJECTED)
def test_schema_rejects_what_validate_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError):
        validate(body)
    assert schema_errors(SCHEMAS[body["type"]], body) != []


VALUES: dict[str, list[Any]] = {
    "account_id": ["acme", "", "a" * MAX_ID_LENGTH, "a" * (MAX_ID_LENGTH + 1), 1, None],
    "ts": [
        "2026-11-26T10:00:00Z",
        "2026-11-26T12:00:00.5+02:00",
        "2026-11-26T10:00:00",
        1_795_687_200_000,
        5,
        None,
    ],
    "event": ["login", "", 3, None],
    "user_id": ["u1", "", None, False],
    "count": [1, MAX_COUNT, MAX_COUNT + 1, 0, -1, "2", True, None],
    "kind": [*sorted(kind.value for kind in {*SupportKind, *BillingKind}), "", None],  # JSON strings
    "priority": [*(priority.value for priority in Priority), "LOW", None, 1],
    "score": [1, 5, 0, 6, True, None],
    "mrr": [0, 99.5, -0.5, 1e12, "1", None],
    "plan": ["pro", "", None, 1],
    "extra": [None, {"any": "thing"}],
}


@settings(max_examples=300, deadline=None)
@given(
    event_type=st.sampled_from(EVENT_TYPES),
    fields=st.fixed_dictionaries(
        {}, optional={name: st.sampled_from(options) for name, options in VALUES.items()}
    ),
)
def test_schema_and_validate_agree(event_type: str, fields: dict[str, Any]) -> None:
    # JSON Schema's "required" is satisfied by null, validate() treats null as absent: drop nulls first.
    body = {"type": event_type, **{name: value for name, value in fields.items() if value is not None}}
    try:
        validate(body)
        accepted = True
    except InvalidEventError:
        accepted = False
    assert accepted == (schema_errors(SCHEMAS[event_type], body) == []), body


def test_with_jsonschema_if_available() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for event_type, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.Draft202012Validator(schema).validate(CANONICAL[event_type])


def test_every_dead_letter_reason_documented() -> None:
    text = EVENTS_MD.read_text()
    for reason in DeadLetterReason:
        assert re.search(rf"^\| `{reason.value}` \|", text, flags=re.MULTILINE), reason
    for header in ("reason", "detail"):
        assert f"`churnwatch.error.{header}`" in text
    for header in ("topic", "partition", "offset"):
        assert f"`churnwatch.source.{header}`" in text


# -- docs/configuration.md ----------------------------------------------------------------------------------


def _type_cell(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _type_cell(next(arg for arg in typing.get_args(annotation) if arg is not type(None)))
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(annotation))
    names = {
        str: "text",
        int: "integer",
        float: "number",
        bool: "boolean",
        Path: "path",
        SecretStr: "secret text",
    }
    return names[annotation]


def render_row(name: str) -> str:
    """The table row of one setting (the script the table was generated with)."""
    info = settings_table()[name].info
    default = info.default
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    bounds = [
        f"{symbol} {getattr(meta, attr)}"
        for meta in info.metadata
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length"))
        if getattr(meta, attr, None) is not None
    ]
    type_cell = _type_cell(info.annotation) + (f" ({', '.join(bounds)})" if bounds else "")
    if isinstance(default, bool):
        default = str(default).lower()
    default_cell = "unset" if default is None else f"`{default}`"
    return f"| `CHURNWATCH_{name.upper()}` | {type_cell} | {default_cell} | {info.description} |"


def test_every_setting_documented() -> None:
    text = CONFIGURATION_MD.read_text()
    missing = [name for name in settings_table() if f"`CHURNWATCH_{name.upper()}`" not in text]
    assert missing == [], "add these rows to docs/configuration.md:\n" + "\n".join(map(render_row, missing))


def test_settings_table_rows_current() -> None:
    rows = set(CONFIGURATION_MD.read_text().splitlines())
    stale = [render_row(name) for name in settings_table() if render_row(name) not in rows]
    assert stale == [], "regenerate these rows in docs/configuration.md:\n" + "\n".join(stale)


def test_no_documented_setting_that_does_not_exist() -> None:
    text = CONFIGURATION_MD.read_text()
    documented = set(re.findall(r"^\| `CHURNWATCH_([A-Z0-9_]+)` \|", text, flags=re.MULTILINE))
    specials = {"CONFIG_FILE"}
    assert documented - specials == {name.upper() for name in settings_table()}
