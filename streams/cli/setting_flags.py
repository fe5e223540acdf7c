"""The worker's settings ``churnwatch replay`` takes flags for, and the settings replay and ``explain`` run
with: the worker's, the flags given overriding them."""

from __future__ import annotations

from streams.errors import ConfigError
from streams.offline.replay_input import InputError
from streams.settings import ENV_PREFIX, Settings, load_settings, settings_table

# Settings replay takes flags for (``--alert-threshold`` ...): the worker's, with the worker's bounds.
FLAG_SETTINGS = (
    "alert_threshold",
    "allowed_lateness_seconds",
    "max_event_bytes",
    "max_future_skew_seconds",
    "retention_days",
    "top_events",
    "event_dedup_max_keys",
)


def flag_name(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def setting_help(setting: str) -> str:
    """A flag's help: the setting's description and its variable."""
    field = settings_table()[setting].info
    return f"{field.description} Default: ${ENV_PREFIX}{setting.upper()} if set, else {field.default}."


def replay_settings(flags: dict[str, object]) -> Settings:
    """The worker's settings (``CHURNWATCH_*``, config file), the flags given overriding them.

    Raises :class:`InputError` with one line naming the flag (or the variable) and the problem.
    """
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return load_settings(**given)
    except ConfigError as error:
        problem = str(error).split(": ", 1)[-1]
        name = error.setting.removeprefix(ENV_PREFIX).lower()
        where = flag_name(name) if name in given else error.setting
        raise InputError(f"{where}: {problem}") from None
