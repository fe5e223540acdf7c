"""All of churnwatch's settings in one frozen object, grouped by concern.

``settings.kafka`` (connection, embedded broker), ``settings.topics``, ``settings.windows`` (validation and
windows), ``settings.worker``, ``settings.detection``, ``settings.delivery`` (sinks and retries),
``settings.holdout``, ``settings.ingest`` (the gateway) and ``settings.feedback`` (answers to alerts). Each
group is a frozen model in this package; each default is written once (taken from the detectors' own config
where they have one).

Values come from keyword arguments, then ``CHURNWATCH_*`` environment variables, then a TOML config file
named by ``CHURNWATCH_CONFIG_FILE``, then the defaults; secrets may be read from files
(``CHURNWATCH_SASL_PASSWORD_FILE=/run/secrets/...``) and are :class:`pydantic.SecretStr` (never printed).
Every setting keeps its flat name in all of these (``CHURNWATCH_TOPIC_USAGE``, ``topic_usage = ...``,
``load_settings(topic_usage=...)``): see :mod:`streams.settings.sources` and docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streams.errors import ConfigError
from streams.settings.delivery import DeliverySettings
from streams.settings.detection import DetectionSettings, WindowsSettings
from streams.settings.gateway import FeedbackSettings, HoldoutSettings, IngestSettings
from streams.settings.kafka import KafkaSettings, TopicsSettings
from streams.settings.sources import ENV_PREFIX, FlatSetting, flat_settings, setting_named, sources
from streams.settings.worker import WorkerSettings

__all__ = [
    "ENV_PREFIX",
    "DeliverySettings",
    "DetectionSettings",
    "FeedbackSettings",
    "FlatSetting",
    "HoldoutSettings",
    "IngestSettings",
    "KafkaSettings",
    "Settings",
    "TopicsSettings",
    "WindowsSettings",
    "WorkerSettings",
    "environment_of",
    "load_settings",
    "setting",
    "settings_table",
]


class Settings(BaseSettings):
    """churnwatch settings (env prefix ``CHURNWATCH_``; see docs/configuration.md)."""

    # hide_input_in_errors: a validation error must never print a secret value.
    model_config = SettingsConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicsSettings = TopicsSettings()
    windows: WindowsSettings = WindowsSettings()
    worker: WorkerSettings = WorkerSettings()
    detection: DetectionSettings = DetectionSettings()
    delivery: DeliverySettings = DeliverySettings()
    holdout: HoldoutSettings = HoldoutSettings()
    ingest: IngestSettings = IngestSettings()
    feedback: FeedbackSettings = FeedbackSettings()

    def __init__(self, **values: Any) -> None:
        """Settings from flat names (``Settings(partitions=3)``) or whole groups, then the other sources."""
        super().__init__(**values)

    def with_values(self, **values: Any) -> Settings:
        """A validated copy with ``values`` given by flat name (``app_id="x"``, ``topic_usage="x.usage"``)."""
        current = {name: getattr(getattr(self, flat.group), flat.field) for name, flat in _TABLE.items()}
        return load_settings(**{**current, **values})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with whole groups replaced; flat names are refused: see :meth:`with_values`."""
        unknown = sorted(set(update or {}) - set(type(self).model_fields))
        if unknown:
            raise TypeError(
                f"{unknown} are not groups of Settings: give flat names to Settings.with_values()"
            )
        return super().model_copy(update=update, deep=deep)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        return tuple(sources(settings_cls, init_kwargs))


def environment_of(settings: Settings) -> dict[str, str]:
    """``CHURNWATCH_<NAME>`` variables giving a child process these settings (secrets too; unset: none)."""
    variables: dict[str, str] = {}
    for flat in _TABLE.values():
        value = getattr(getattr(settings, flat.group), flat.field)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        variables[flat.variable] = str(value)
    return variables


def settings_table() -> dict[str, FlatSetting]:
    """Every setting by its flat name (``topic_usage``), in the order of the groups and their fields."""
    return _TABLE


def setting(name: str) -> FlatSetting:
    """One setting by its flat name; KeyError for a name that is none."""
    return _TABLE[name]


_TABLE = flat_settings(Settings)


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation errors into a :class:`ConfigError` naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(setting_named(tuple(first["loc"]), message, _TABLE), message) from None
