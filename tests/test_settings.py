"""Tests of settings loading (``streams.settings``): defaults, environment, TOML file, secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from detectors.vocabulary import EventType
from streams.errors import ConfigError
from streams.settings import Settings, load_settings

# Every secret field; each may also be given as CHURNWATCH_<NAME>_FILE.
SECRET_FIELDS = sorted(
    name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CHURNWATCH_* variable of the developer's shell leaks in; run where no stray file lies."""
    for name in list(os.environ):
        if name.startswith("CHURNWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = load_settings()
    assert s.bootstrap_servers is None
    assert s.embedded_kafka
    assert s.bootstrap == "127.0.0.1:9092"
    assert s.security_protocol == "PLAINTEXT"
    assert s.sasl_mechanism is None
    assert s.sasl_password is None
    assert s.app_id == "churnwatch"
    assert s.event_topics == {
        "usage": "churnwatch.usage",
        "support": "churnwatch.support",
        "billing": "churnwatch.billing",
    }
    assert s.topic_deadletter == "churnwatch.deadletter"
    assert s.partitions == 8
    assert s.max_event_bytes == 65_536
    assert s.max_future_skew_seconds == 86_400
    assert s.allowed_lateness_seconds == 172_800
    assert s.retention_days == 56
    assert s.top_events == 5
    assert s.kafka_home == Path(".kafka")
    assert s.log_level == "info"


def test_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "24")
    monkeypatch.setenv("CHURNWATCH_ALLOWED_LATENESS_SECONDS", "3600.5")
    monkeypatch.setenv("CHURNWATCH_TOPIC_USAGE", "prod.usage")
    monkeypatch.setenv("CHURNWATCH_LOG_LEVEL", "debug")
    s = load_settings()
    assert s.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert not s.embedded_kafka
    assert s.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert s.partitions == 24
    assert s.allowed_lateness_seconds == 3600.5
    assert s.event_topics[EventType.USAGE] == "prod.usage"
    assert s.log_level == "debug"


def test_keyword_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "24")
    assert load_settings(partitions=3).partitions == 3


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError):
        s.partitions = 2  # type: ignore[misc]


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
    assert s.bootstrap_servers == "broker.internal:9093"
    assert s.partitions == 12
    assert s.topic_alerts == "ops.alerts"
    assert s.allowed_lateness_seconds == 600
    assert s.retention_days == 56  # not in the file: default


def test_env_beats_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "churnwatch.toml"
    config.write_text('partitions = 12\ntopic_alerts = "ops.alerts"\n')
    monkeypatch.setenv("CHURNWATCH_CONFIG_FILE", str(config))
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "4")
    s = load_settings()
    assert s.partitions == 4
    assert s.topic_alerts == "ops.alerts"


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
    assert isinstance(s.sasl_password, SecretStr)
    assert s.sasl_password.get_secret_value() == "s3cr3t-from-file"  # trailing newline stripped
    assert s.sasl_mechanism == "SCRAM-SHA-512"


def test_secret_fields_found() -> None:
    assert "sasl_password" in SECRET_FIELDS


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_every_secret_readable_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, field: str) -> None:
    secret = tmp_path / field
    secret.write_text(f"{field}-value-from-file\n")
    monkeypatch.setenv(f"CHURNWATCH_{field.upper()}_FILE", str(secret))
    if field == "sasl_password":
        _sasl_env(monkeypatch)
    value = getattr(load_settings(), field)
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == f"{field}-value-from-file"


def test_password_env_beats_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "sasl_password"
    secret.write_text("from-file")
    _sasl_env(monkeypatch)
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("CHURNWATCH_SASL_PASSWORD", "from-env")
    s = load_settings()
    assert s.sasl_password is not None
    assert s.sasl_password.get_secret_value() == "from-env"


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
    assert load_settings().security_protocol == "SSL"


def test_secrets_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    _sasl_env(monkeypatch, mechanism="PLAIN")
    values = {field: f"hunter2-{field}-very-secret" for field in SECRET_FIELDS}
    for field, value in values.items():
        monkeypatch.setenv(f"CHURNWATCH_{field.upper()}", value)
    s = load_settings()
    assert s.sasl_password is not None
    assert s.sasl_password.get_secret_value() == values["sasl_password"]
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
    missing = [name for name, info in Settings.model_fields.items() if not info.description]
    assert missing == []
