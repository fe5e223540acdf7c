"""Package layout rule: ``detectors`` is pure logic and depends on neither the transport nor ``streams``."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DETECTORS = REPO / "detectors"
FORBIDDEN = frozenset({"faust", "aiokafka", "mode", "streams"})

MODULES = sorted(path for path in DETECTORS.rglob("*.py"))  # subpackages (detectors.features) too


def module_name(path: Path) -> str:
    """``detectors.features.usage`` for ``detectors/features/usage.py`` (``detectors.features`` for its
    ``__init__.py``)."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def forbidden_imports(source: str, forbidden: frozenset[str] = FORBIDDEN) -> list[str]:
    """Top-level packages from ``forbidden`` that ``source`` imports, statically or by name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            names = [node.args[0].value]
        found.extend(name for name in names if name.split(".")[0] in forbidden)
    return found


def test_scanner_catches_every_form() -> None:
    source = (
        "import faust\n"
        "import aiokafka.admin as admin\n"
        "from mode import Service\n"
        "from streams.events import decode\n"
        "def f():\n"
        "    import importlib\n"
        "    importlib.import_module('streams.settings')\n"
        "    __import__('faust.types')\n"
        "from . import windows\n"
        "import modest, streamsx\n"
    )
    assert forbidden_imports(source) == [
        "faust",
        "aiokafka.admin",
        "mode",
        "streams.events",
        "streams.settings",
        "faust.types",
    ]


def test_detectors_modules_found() -> None:
    names = {module_name(path) for path in MODULES}
    assert {"detectors", "detectors.windows", "detectors.features", "detectors.features.usage"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[module_name(path) for path in MODULES])
def test_detectors_source_imports_no_transport(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == []


def test_importing_detectors_loads_no_transport() -> None:
    modules = [module_name(path) for path in MODULES]
    code = (
        f"import {', '.join(modules)}; import sys, json; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(FORBIDDEN)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == []


# The engine live and replay both drive: transport-free, like ``detectors`` (it may use ``streams`` modules).
ENGINE = REPO / "streams" / "engine"
ENGINE_MODULES = sorted(ENGINE.glob("*.py"))
TRANSPORT = frozenset({"faust", "aiokafka", "kafka", "confluent_kafka", "mode"})


def test_engine_scanner_catches_kafka_clients() -> None:
    source = "import kafka\nfrom confluent_kafka import Consumer\nfrom streams.events import decode\n"
    assert forbidden_imports(source, TRANSPORT) == ["kafka", "confluent_kafka"]


def test_engine_modules_found() -> None:
    assert {"__init__.py", "core.py", "store.py"} <= {path.name for path in ENGINE_MODULES}


@pytest.mark.parametrize("path", ENGINE_MODULES, ids=[path.name for path in ENGINE_MODULES])
def test_engine_source_imports_no_transport(path: Path) -> None:
    assert forbidden_imports(path.read_text(), TRANSPORT) == []


def test_importing_the_engine_loads_no_transport() -> None:
    modules = [
        "streams.engine",
        *(f"streams.engine.{path.stem}" for path in ENGINE_MODULES if path.stem != "__init__"),
    ]
    code = (
        f"import {', '.join(modules)}; import sys, json; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(TRANSPORT)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_readme_layout_table_names_every_streams_folder() -> None:
    """The README's layout table and the folders of ``streams/`` agree."""
    folders = {f"streams/{path.parent.name}/" for path in (REPO / "streams").glob("*/__init__.py")}
    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `(streams/[a-z_]+/)` \|", readme, flags=re.MULTILINE))
    assert listed == folders
