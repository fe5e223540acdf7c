"""The ``churnwatch`` entry point: a Ctrl-C while the command line is still being imported ends the command
with exit code 130 and no traceback, as it does once the command runs."""

from __future__ import annotations

import importlib.abc
import sys
from types import ModuleType

import pytest

from streams.cli import entry


class Interrupted(importlib.abc.MetaPathFinder):
    """A finder that is interrupted (as by a Ctrl-C) when asked for one module."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: object, target: ModuleType | None = None) -> None:
        if fullname == self.name:
            raise KeyboardInterrupt
        return None


def test_a_ctrl_c_while_importing_ends_with_130(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "streams.cli.main", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Interrupted("streams.cli.main"), *sys.meta_path])
    raised: BaseException | None = None
    try:
        entry.main()
    except BaseException as error:  # a KeyboardInterrupt let through must fail this test, not end the run
        raised = error
    assert isinstance(raised, SystemExit) and raised.code == 130
