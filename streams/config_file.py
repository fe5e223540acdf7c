"""The TOML config file named by ``CHURNWATCH_CONFIG_FILE``: read strictly, errors naming the file and line.

Keys are the settings' names in lower case without the ``CHURNWATCH_`` prefix (``alert_threshold = 0.3``),
at the top level or under a ``[churnwatch]`` table; upper-case keys (``ALERT_THRESHOLD``, also with the
prefix) are accepted too. A missing file, a directory, bytes that are not UTF-8, a TOML syntax error or an
unknown key fail with a :class:`~streams.errors.ConfigError` that says which file and where.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from streams.errors import ConfigError

SETTING = "CHURNWATCH_CONFIG_FILE"
PREFIX = "churnwatch_"
TABLE = "churnwatch"


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(SETTING, f"{path} does not exist")
    if path.is_dir():
        raise ConfigError(SETTING, f"{path} is a directory, not a TOML file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(SETTING, f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(SETTING, f"{path} line {line}: not UTF-8 text (byte {exc.start})") from None


def _key(raw: str) -> str:
    key = raw.lower()
    return key.removeprefix(PREFIX) if key.startswith(PREFIX) else key


def read_config_file(path: Path, known: Collection[str]) -> dict[str, Any]:
    """Setting name -> value from the TOML file at ``path`` (``known``: the valid setting names)."""
    text = _text(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        detail = message.split(" (at ")[0]
        found = re.search(r"at line (\d+)", message)
        line = int(found.group(1)) if found else _line_of(text, len(text.rstrip()))
        raise ConfigError(SETTING, f"{path} line {line}: TOML syntax error: {detail}") from None
    table = document.pop(TABLE, None)
    if isinstance(table, dict):
        document = {**table, **document}
    elif table is not None:
        document[TABLE] = table
    values: dict[str, Any] = {}
    for raw, value in document.items():
        key = _key(raw)
        if key not in known:
            raise ConfigError(
                SETTING,
                f"{path}: unknown setting {raw!r} (keys are setting names like alert_threshold = 0.3, "
                "at the top level or under [churnwatch]; see docs/configuration.md)",
            )
        values[key] = value
    return values
