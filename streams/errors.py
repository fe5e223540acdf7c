"""churnwatch's exceptions: one root class so callers can catch everything of ours in one place."""

from __future__ import annotations


class ChurnwatchError(Exception):
    """Root of every error churnwatch raises on purpose."""


class ConfigError(ChurnwatchError):
    """A setting is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"setting {setting!r}: {problem}")
        self.setting = setting


class KafkaUnavailableError(ChurnwatchError):
    """The Kafka broker could not be reached, started or stopped."""


class DeliveryError(ChurnwatchError):
    """An alert could not be delivered to a sink."""
