"""Where setting values come from: flat names (``partitions``, ``topic_usage``) nested into their groups.

Outside churnwatch every setting keeps one flat name: ``CHURNWATCH_<NAME>`` in the environment, ``<name>``
in the TOML config file, in keyword arguments and in ``churnwatch replay``'s flags. Inside, settings are
grouped by concern (``settings.topics.usage``). A group field's flat name is its validation alias when it has
one (``topic_usage`` for ``topics.usage``), else its own name; :func:`flat_settings` lists them all, and
every source here turns flat names into ``{group: {flat name: value}}``, which the groups validate by alias.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from streams.config_file import read_config_file
from streams.errors import ConfigError

ENV_PREFIX = "CHURNWATCH_"
SECRET_FILE_SUFFIX = "_FILE"
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG_FILE"


@dataclass(frozen=True, slots=True)
class FlatSetting:
    """One setting as users name it (``name``) and where it lives (``settings.<group>.<field>``)."""

    name: str
    group: str
    field: str
    info: FieldInfo

    @property
    def variable(self) -> str:
        """Its environment variable, e.g. ``CHURNWATCH_TOPIC_USAGE``."""
        return f"{ENV_PREFIX}{self.name.upper()}"

    @property
    def secret(self) -> bool:
        """A secret: never printed, and also readable from the file named by ``<variable>_FILE``."""
        return "SecretStr" in str(self.info.annotation)


def flat_settings(settings_cls: type[BaseModel]) -> dict[str, FlatSetting]:
    """Flat name -> setting, for every field of every group of ``settings_cls``, in declaration order."""
    table: dict[str, FlatSetting] = {}
    for group, group_info in settings_cls.model_fields.items():
        model = group_info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), f"{group} is not a group"
        for field, info in model.model_fields.items():
            name = info.validation_alias if isinstance(info.validation_alias, str) else field
            assert name not in table, f"two settings named {name}"
            table[name] = FlatSetting(name, group, field, info)
    return table


def nest(values: Mapping[str, Any], table: Mapping[str, FlatSetting]) -> dict[str, Any]:
    """``{flat name: value}`` as ``{group: {flat name: value}}``.

    Other keys (a group given whole, a typo) stay at the top, where the settings model takes or refuses them.
    """
    nested: dict[str, Any] = {}
    groups = {setting.group for setting in table.values()}
    for key, value in values.items():
        setting = table.get(key)
        if setting is not None:
            group = nested.setdefault(setting.group, {})
            if isinstance(group, BaseModel):  # a whole group and some of its settings: the settings win
                nested[setting.group] = group = dict(group)
            group[key] = value
        elif key in groups and isinstance(nested.get(key), dict):
            nested[key] = {**(dict(value) if isinstance(value, BaseModel) else value), **nested[key]}
        else:
            nested[key] = value
    return nested


def environment(table: Mapping[str, FlatSetting]) -> dict[str, str]:
    """Flat name -> value of every ``CHURNWATCH_<NAME>`` variable that is set (names in any case)."""
    environ = {name.upper(): value for name, value in os.environ.items()}
    return {name: environ[setting.variable] for name, setting in table.items() if setting.variable in environ}


def secret_files(table: Mapping[str, FlatSetting]) -> dict[str, str]:
    """Flat name -> contents of the file named by ``CHURNWATCH_<SECRET>_FILE`` (Docker/Kubernetes secrets)."""
    values: dict[str, str] = {}
    for name, setting in table.items():
        variable = setting.variable + SECRET_FILE_SUFFIX
        path = os.environ.get(variable)
        if setting.secret and path:
            try:
                values[name] = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(variable, f"cannot read {path}: {exc.strerror}") from None
    return values


class NestedSource(PydanticBaseSettingsSource):
    """A settings source holding values already nested by :func:`nest`."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


def sources(settings_cls: type[BaseSettings], init_kwargs: dict[str, Any]) -> Iterator[NestedSource]:
    """The sources in order of precedence: keywords, environment, config file, secret files."""
    table = flat_settings(settings_cls)
    yield NestedSource(settings_cls, nest(init_kwargs, table))
    yield NestedSource(settings_cls, nest(environment(table), table))
    config_file = os.environ.get(CONFIG_FILE_VARIABLE)
    if config_file:
        yield NestedSource(settings_cls, nest(read_config_file(Path(config_file), table), table))
    yield NestedSource(settings_cls, nest(secret_files(table), table))


def setting_named(loc: tuple[int | str, ...], message: str, table: Mapping[str, FlatSetting]) -> str:
    """The variable a validation error at ``loc`` is about (``settings`` when none can be told).

    A field's error has its location (``("topics", "topic_usage")``); a check across fields has only its group
    (or nothing) and names the first setting its message mentions, by flat or field name.
    """
    by_field = {(s.group, s.field): s for s in table.values()}
    if len(loc) >= 2:
        group, key = str(loc[0]), str(loc[1])
        setting = table.get(key) or by_field.get((group, key))
        if setting is not None:
            return setting.variable
    if len(loc) == 1 and str(loc[0]) not in {s.group for s in table.values()}:
        return f"{ENV_PREFIX}{str(loc[0]).upper()}"  # an unknown keyword
    group_of = str(loc[0]) if loc else None
    candidates = [s for s in table.values() if group_of in (None, s.group)]
    mentioned = sorted(
        (position, -len(word), s.variable)
        for s in candidates
        for word in {s.name, s.field}
        if (position := message.find(word)) >= 0
    )
    return mentioned[0][2] if mentioned else "settings"
