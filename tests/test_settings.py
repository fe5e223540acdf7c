"""Tests of settings loading (``streams.settings``): defaults, environment, TOML file, secret files."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import SecretStr

from detectors.answers import AnswerPolicy
from detectors.config import DetectorConfig
from detectors.vocabulary import EventType
from detectors.windows import WindowConfig
from streams.errors import ConfigError
from streams.events import MIN_TS_MS
from streams.live.holdout import Holdout
from streams.settings import Settings, TopicsSettings, environment_of, load_settings, settings_table
from streams.sinks import RetryPolicy

# Every secret field; each may also be given as CHURNWATCH_<NAME>_FILE.
SECRET_FIELDS = sorted(name for name, setting in settings_table().items() if setting.secret)


def value_of(settings: Settings, name: str) -> Any:
    """A setting's value by its flat name (``topic_usage`` -> ``settings.topics.usage``)."""
    entry = settings_table()[name]
    return getattr(getattr(settings, entry.group), entry.field)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CHURNWATCH_* variable of the developer's shell leaks in; run where no stray file lies."""
    for name in list(os.environ):
        if name.startswith("CHURNWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = load_settings()
    assert s.kafka.bootstrap_servers is None
    assert s.kafka.embedded
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.kafka.sasl_mechanism is None
    assert s.kafka.sasl_password is None
    assert s.topics.app_id == "churnwatch"
    assert s.topics.events == {
        "usage": "churnwatch.usage",
        "support": "churnwatch.support",
        "billing": "churnwatch.billing",
    }
    assert s.topics.deadletter == "churnwatch.deadletter"
    assert s.topics.partitions == 8
    assert s.windows.max_event_bytes == 65_536
    assert s.windows.max_future_skew_seconds == 86_400
    assert s.windows.allowed_lateness_seconds == 172_800
    assert s.windows.retention_days == 56
    assert s.windows.top_events == 5
    assert s.kafka.local_home == Path(".kafka")
    assert s.worker.log_level == "info"


def test_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "24")
    monkeypatch.setenv("CHURNWATCH_ALLOWED_LATENESS_SECONDS", "3600.5")
    monkeypatch.setenv("CHURNWATCH_TOPIC_USAGE", "prod.usage")
    monkeypatch.setenv("CHURNWATCH_LOG_LEVEL", "debug")
    s = load_settings()
    assert s.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert not s.kafka.embedded
    assert s.kafka.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert s.topics.partitions == 24
    assert s.windows.allowed_lateness_seconds == 3600.5
    assert s.topics.events[EventType.USAGE] == "prod.usage"
    assert s.worker.log_level == "debug"


def test_keyword_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "24")
    assert load_settings(partitions=3).topics.partitions == 3


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError):
        s.topics.partitions = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kafka_port", "abc"),
        ("kafka_port", "70000"),
        ("partitions", "0"),
        ("retention_days", "3"),
        ("top_events", "51"),
        ("max_event_bytes", "10"),
        ("max_future_skew_seconds", "0"),
        ("allowed_lateness_seconds", "-1"),
        ("allowed_lateness_seconds", "2592001"),  # over 30 days: the open days' users keep a bit a day
        ("security_protocol", "TLS"),
        ("sasl_mechanism", "GSSAPI"),
        ("log_level", "verbose"),
        ("app_id", ""),
        ("batch_within_seconds", "soon"),
        ("web_port", "0"),
    ],
)
def test_invalid_env_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    name = f"CHURNWATCH_{field.upper()}"
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == name
    assert name in str(info.value)


def test_invalid_keyword_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="CHURNWATCH_RETENTION_DAYS"):
        load_settings(retention_days=1)


def test_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "churnwatch.toml"
    config.write_text(
        'bootstrap_servers = "broker.internal:9093"\n'
        "partitions = 12\n"
        'topic_alerts = "ops.alerts"\n'
        "allowed_lateness_seconds = 600\n"
    )
    monkeypatch.setenv("CHURNWATCH_CONFIG_FILE", str(config))
    s = load_settings()
    assert s.kafka.bootstrap_servers == "broker.internal:9093"
    assert s.topics.partitions == 12
    assert s.topics.alerts == "ops.alerts"
    assert s.windows.allowed_lateness_seconds == 600
    assert s.windows.retention_days == 56  # not in the file: default


def test_env_beats_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "churnwatch.toml"
    config.write_text('partitions = 12\ntopic_alerts = "ops.alerts"\n')
    monkeypatch.setenv("CHURNWATCH_CONFIG_FILE", str(config))
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "4")
    s = load_settings()
    assert s.topics.partitions == 4
    assert s.topics.alerts == "ops.alerts"


def test_invalid_config_file_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "churnwatch.toml"
    config.write_text("retention_days = 2\n")
    monkeypatch.setenv("CHURNWATCH_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match="CHURNWATCH_RETENTION_DAYS"):
        load_settings()


def test_unknown_config_file_key_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "churnwatch.toml"
    config.write_text("partitons = 12\n")
    monkeypatch.setenv("CHURNWATCH_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match=r"churnwatch\.toml: unknown setting 'partitons'") as caught:
        load_settings()
    assert caught.value.setting == "CHURNWATCH_CONFIG_FILE"


def _sasl_env(monkeypatch: pytest.MonkeyPatch, mechanism: str | None = "SCRAM-SHA-512") -> None:
    monkeypatch.setenv("CHURNWATCH_BOOTSTRAP_SERVERS", "broker:9096")
    monkeypatch.setenv("CHURNWATCH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CHURNWATCH_SASL_USERNAME", "churnwatch")
    if mechanism is not None:
        monkeypatch.setenv("CHURNWATCH_SASL_MECHANISM", mechanism)


def test_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "sasl_password"
    secret.write_text("s3cr3t-from-file\n")
    _sasl_env(monkeypatch)
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD_FILE", str(secret))
    s = load_settings()
    assert isinstance(s.kafka.sasl_password, SecretStr)
    assert s.kafka.sasl_password.get_secret_value() == "s3cr3t-from-file"  # trailing newline stripped
    assert s.kafka.sasl_mechanism == "SCRAM-SHA-512"


def test_secret_fields_found() -> None:
    assert "sasl_password" in SECRET_FIELDS


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_every_secret_readable_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, field: str) -> None:
    secret = tmp_path / field
    content = SPECIAL_VALUES.get(field, f"{field}-value-from-file")  # URLs are checked at start
    secret.write_text(f"{content}\n")
    monkeypatch.setenv(f"CHURNWATCH_{field.upper()}_FILE", str(secret))
    if field == "sasl_password":
        _sasl_env(monkeypatch)
    if field == "webhook_url":
        monkeypatch.setenv("CHURNWATCH_WEBHOOK_SECRET", SPECIAL_VALUES["webhook_secret"])
    value = value_of(load_settings(), field)
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == content


def test_password_env_beats_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "sasl_password"
    secret.write_text("from-file")
    _sasl_env(monkeypatch)
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD", "from-env")
    s = load_settings()
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "from-env"


def test_unreadable_secret_file_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _sasl_env(monkeypatch)
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CHURNWATCH_SASL_PASSWORD_FILE"):
        load_settings()


def test_sasl_without_mechanism_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_env(monkeypatch, mechanism=None)
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD", "pw")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "sasl_mechanism" in str(info.value).lower()


def test_sasl_without_mechanism_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_env(monkeypatch, mechanism=None)
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD", "pw")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "CHURNWATCH_SASL_MECHANISM"


def test_sasl_without_password_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_env(monkeypatch)
    with pytest.raises(ConfigError, match="sasl_password"):
        load_settings()


def test_ssl_needs_no_sasl_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_SECURITY_PROTOCOL", "SSL")
    assert load_settings().kafka.security_protocol == "SSL"


def test_secrets_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_env(monkeypatch, mechanism="PLAIN")
    values = {field: f"hunter2-{field}-very-secret" for field in SECRET_FIELDS}
    # The sinks' URLs and signing secret are checked at start: valid ones, still secret.
    for field in ("slack_webhook_url", "webhook_url"):
        values[field] = f"https://hooks.example/{values[field]}"
    values["webhook_secret"] = "whsec_" + base64.b64encode(values["webhook_secret"].encode()).decode()
    for field, value in values.items():
        monkeypatch.setenv(f"CHURNWATCH_{field.upper()}", value)
    s = load_settings()
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == values["sasl_password"]
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert "sasl_password" in text
        for value in values.values():
            assert value not in text
            assert "hunter2" not in text


def test_invalid_input_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "hunter2-not-a-number")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_every_field_has_a_description() -> None:
    missing = [name for name, setting in settings_table().items() if not setting.info.description]
    assert missing == []


# -- flat names outside, groups inside ----------------------------------------------------------------------

# Values that pass a setting's own check beyond its type and bounds.
SPECIAL_VALUES = {
    "security_protocol": "SSL",  # SASL_* would need credentials
    "min_event_ts": "2001-02-03T04:05:06Z",
    "ingest_listen": "0.0.0.0:9999",
    "slack_webhook_url": "https://hooks.slack.example/services/T/B/x",
    "webhook_url": "https://crm.example/hooks/x",
    "webhook_secret": "whsec_c2VjcmV0LWZvci10ZXN0cw==",
    "alert_budget": "0.05",  # optional number: unset by default
}


def other_value(name: str) -> str:
    """A valid value of the setting that is not its default, as an environment variable's text."""
    info = settings_table()[name].info
    if name in SPECIAL_VALUES:
        return SPECIAL_VALUES[name]
    options = [arg for arg in get_args(info.annotation) if arg is not type(None)]
    literal = [value for option in options for value in get_args(option)] or list(get_args(info.annotation))
    if literal:
        return str(next(value for value in literal if value != info.default))
    bounds = {
        attr: getattr(meta, attr) for meta in info.metadata for attr in ("le", "lt") if hasattr(meta, attr)
    }
    upper = min((value for value in bounds.values() if value is not None), default=None)
    if isinstance(info.default, bool):
        return str(not info.default).lower()
    if info.annotation in (str, str | None):
        return f"x-{name}"
    if info.annotation is int:
        return str(info.default + 1 if upper is None or info.default + 1 <= upper else info.default - 1)
    if info.annotation is float:
        return str(info.default + 1.5 if upper is None else (info.default + upper) / 2)
    return f"x-{name}"  # paths and secrets


def test_every_variable_is_read_into_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {name: other_value(name) for name in settings_table()}
    for name, text in values.items():
        monkeypatch.setenv(f"CHURNWATCH_{name.upper()}", text)
    s = load_settings()
    for name, text in values.items():
        value = value_of(s, name)
        shown = value.get_secret_value() if isinstance(value, SecretStr) else value
        written = str(shown).lower() if isinstance(shown, bool) else str(shown)
        assert written == text or float(shown) == float(text), name
        assert shown != settings_table()[name].info.default, name


def test_a_child_process_environment_gives_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the demo hands its worker (``environment_of``): every variable flat, secrets included."""
    for name, text in {name: other_value(name) for name in settings_table()}.items():
        monkeypatch.setenv(f"CHURNWATCH_{name.upper()}", text)
    original = load_settings()
    variables = environment_of(original)
    assert all(name.startswith("CHURNWATCH_") and "{" not in value for name, value in variables.items())
    for name in list(os.environ):
        if name.startswith("CHURNWATCH_"):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


def test_a_copy_takes_flat_names_validated_and_refuses_them_where_they_would_be_ignored() -> None:
    base = load_settings(partitions=3)
    copy = base.with_values(app_id="demo-1", topic_usage="demo-1.usage")
    assert (copy.topics.app_id, copy.topics.usage, copy.topics.partitions) == ("demo-1", "demo-1.usage", 3)
    assert base.topics.app_id == "churnwatch"
    with pytest.raises(ConfigError):
        load_settings().with_values(partitions=0)
    with pytest.raises(TypeError, match="app_id"):
        base.model_copy(update={"app_id": "ignored"})
    assert base.model_copy(update={"topics": copy.topics}).topics.app_id == "demo-1"


def test_flat_keywords_and_whole_groups() -> None:
    s = load_settings(partitions=3, topic_usage="u", delivery_max_attempts=2)
    assert (s.topics.partitions, s.topics.usage, s.delivery.max_attempts) == (3, "u", 2)
    grouped = Settings(topics=TopicsSettings(usage="u2"), partitions=5)
    assert (grouped.topics.usage, grouped.topics.partitions) == ("u2", 5)
    with pytest.raises(ConfigError) as unknown:
        load_settings(partitons=3)
    assert unknown.value.setting == "CHURNWATCH_PARTITONS"


def test_flat_names_are_unique_and_every_group_is_frozen() -> None:
    table = settings_table()
    assert len({setting.variable for setting in table.values()}) == len(table)
    s = load_settings()
    with pytest.raises(ValueError):
        s.topics.partitions = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CHURNWATCH_WEBHOOK_URL": "https://crm.example/hooks/x"}, "CHURNWATCH_WEBHOOK_SECRET"),
        ({"CHURNWATCH_SLACK_WEBHOOK_URL": "ftp://hooks.example/x"}, "CHURNWATCH_SLACK_WEBHOOK_URL"),
        (
            {"CHURNWATCH_DELIVERY_BASE_DELAY_SECONDS": "10", "CHURNWATCH_DELIVERY_MAX_DELAY_SECONDS": "5"},
            "CHURNWATCH_DELIVERY_MAX_DELAY_SECONDS",
        ),
        ({"CHURNWATCH_HOLDOUT_SHARE": "2"}, "CHURNWATCH_HOLDOUT_SHARE"),
        ({"CHURNWATCH_INGEST_LISTEN": "8080"}, "CHURNWATCH_INGEST_LISTEN"),
    ],
)
def test_checks_across_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable
    assert "hooks" not in str(info.value)  # the URL (a secret) is never echoed


def test_defaults_are_the_detectors_own() -> None:
    """One set of defaults: where the detectors or the sinks have a default, the setting takes it."""
    s = load_settings()
    assert s.windows.window_config() == WindowConfig()
    assert s.detection.detector_config() == DetectorConfig()
    assert s.feedback.answer_policy() == AnswerPolicy()
    assert s.delivery.retry_policy() == RetryPolicy()
    assert s.holdout.holdout() == Holdout()
    assert s.windows.min_event_ts_ms == MIN_TS_MS
