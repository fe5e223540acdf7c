"""The optional mypyc build (``streams/dev/mypyc_build.py``) stays in step with the source tree.

The build itself is not run here (it takes minutes and needs gcc): these checks are what CI can afford, so
that a module added to, renamed in or removed from ``detectors/`` is noticed by whoever changes it.
"""

from __future__ import annotations

import subprocess

import pytest

from streams.dev.mypyc_build import COMPILED, INTERPRETED, REPO, compiled_path, module_path


def modules_of(package: str) -> set[str]:
    """Every module of ``package`` in the source tree (packages by their ``__init__.py``)."""
    names = set()
    for path in (REPO / package).rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_listed_module_exists() -> None:
    missing = [module for module in (*COMPILED, *INTERPRETED) if not module_path(REPO, module).is_file()]
    assert missing == []


def test_every_module_of_detectors_is_compiled_or_says_why_not() -> None:
    listed = {module for module in COMPILED if module.split(".")[0] == "detectors"} | set(INTERPRETED)
    assert listed == modules_of("detectors")
    assert all(reason.strip() for reason in INTERPRETED.values())


def test_no_module_is_listed_twice() -> None:
    assert len(set(COMPILED)) == len(COMPILED)
    assert not set(COMPILED) & set(INTERPRETED)


def test_the_build_and_what_benchmarks_patch_stay_interpreted() -> None:
    # The tool itself, and Engine (benchmarks/sweep_cost.py replaces Engine.sweep: a compiled class refuses).
    assert "streams.dev.mypyc_build" not in COMPILED
    assert "streams.engine.core" not in COMPILED


def test_the_source_tree_holds_no_extension() -> None:
    """The build writes into build/mypyc only; an extension next to a source would shadow edits to it."""
    assert [module for module in COMPILED if compiled_path(REPO, module)] == []


@pytest.mark.parametrize(
    "path", ["build/mypyc/detectors/risk.py", "detectors/risk.cpython-311-x86_64-linux-gnu.so"]
)
def test_build_outputs_are_ignored_by_git(path: str) -> None:
    result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
    assert result.returncode == 0, f"{path} is not git-ignored"
