"""An optional mypyc build of the sweep's and replay fold's modules (issue 15); pure Python is the reference.

Usage::

    .venv/bin/python -m streams.dev.mypyc_build build    # or: deploy/dev compile
    PYTHONPATH=build/mypyc .venv/bin/churnwatch replay events.jsonl ...
    .venv/bin/python -m streams.dev.mypyc_build status   # which build this interpreter imports
    .venv/bin/python -m streams.dev.mypyc_build clean    # or: deploy/dev compile clean

``build`` copies ``detectors/`` and ``streams/`` (sources and data files) to ``build/mypyc/`` and compiles
:data:`COMPILED` there with mypyc (C extensions next to their sources). Nothing in the source tree changes, so
an edited module is never shadowed by a stale extension: the compiled build is used only where
``build/mypyc`` comes first on ``sys.path`` (``PYTHONPATH``; ``python -m`` puts the working directory first,
so run ``python -P -m ...`` or a console script such as ``.venv/bin/pytest``), and is rebuilt after edits.
Every other module of the copy runs interpreted, as do all of them without the build.

mypyc needs gcc, the Python headers and mypy (a dev dependency); a build takes a few minutes. Results are
the same compiled or not (docs/performance.md, "Compiled sweep (mypyc)"); ``tests/test_mypyc_build.py``
keeps :data:`COMPILED` and :data:`INTERPRETED` in step with the source tree.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def _source_tree() -> Path:
    """The checkout: the nearest parent holding pyproject.toml (the copy in build/mypyc holds none)."""
    here = Path(__file__).resolve()
    return next((parent for parent in here.parents if (parent / "pyproject.toml").is_file()), here.parents[2])


REPO = _source_tree()
PACKAGES = ("detectors", "streams")
OUTPUT = REPO / "build" / "mypyc"

# The modules the sweep (``Detection.sweep``) and replay's fold run through, compiled by mypyc.
COMPILED: tuple[str, ...] = (
    "detectors.account_state",
    "detectors.alerts",
    "detectors.answer_segments",
    "detectors.answers",
    "detectors.baseline",
    "detectors.btyd",
    "detectors.budget",
    "detectors.calendar_effects",
    "detectors.calibration",
    "detectors.census",
    "detectors.config",
    "detectors.cycle",
    "detectors.day_table",
    "detectors.drop",
    "detectors.engagement",
    "detectors.episode",
    "detectors.experts",
    "detectors.features",
    "detectors.features.billing",
    "detectors.features.level",
    "detectors.features.silence",
    "detectors.features.sums",
    "detectors.features.support",
    "detectors.features.usage",
    "detectors.history",
    "detectors.monitor",
    "detectors.open_names",
    "detectors.open_users",
    "detectors.outage",
    "detectors.outcomes",
    "detectors.population",
    "detectors.prior",
    "detectors.ranking",
    "detectors.reasons",
    "detectors.risk",
    "detectors.shared",
    "detectors.spells",
    "detectors.vocabulary",
    "detectors.windows",
    "streams.dedup",
    "streams.engine.clock",
    "streams.engine.detection",
    "streams.engine.fold",
    "streams.engine.state",
    "streams.offline.replay_fold",
)

# Modules of ``detectors/`` left interpreted, and why (every module of ``detectors/`` is in one of the lists).
INTERPRETED: dict[str, str] = {
    "detectors": "empty package",
    "detectors.steps": "drain: a loop over next() on generators that are compiled or not; nothing to gain",
    "detectors.refit": "the batch fit is numpy's work, once per refit_every outcomes; nothing to gain",
    "detectors.blas": "a context manager around numpy's fits; nothing to gain",
}

# mypy options of the build: third-party packages are not followed (they stay dynamic calls either way), which
# takes the build's type check from ~13 minutes (river, numpy, scipy...) to seconds.
MYPY_OPTIONS = ("--python-version=3.11", "--follow-imports=skip", "--ignore-missing-imports")


def module_path(root: Path, module: str) -> Path:
    """The source file of ``module`` under ``root`` (a package's ``__init__.py``)."""
    path = root.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def copy_sources(output: Path) -> None:
    """A fresh copy of the packages (sources and data files, no byte code or extensions) in ``output``."""
    if output.exists():
        shutil.rmtree(output)
    ignored = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(REPO / package, output / package, ignore=ignored)


def build(output: Path = OUTPUT, modules: tuple[str, ...] = COMPILED) -> float:
    """Copy the packages to ``output`` and compile ``modules`` there in place; the build's wall seconds."""
    started = time.monotonic()
    copy_sources(output)
    paths = [str(module_path(Path(), module)) for module in modules]
    setup = textwrap.dedent(
        f"""
        from setuptools import setup
        from mypyc.build import mypycify

        setup(name="churnwatch_mypyc", ext_modules=mypycify({[*MYPY_OPTIONS, *paths]!r}, opt_level="3"))
        """
    )
    (output / "setup_mypyc.py").write_text(setup)
    command = [sys.executable, "setup_mypyc.py", "build_ext", "--inplace"]
    subprocess.run(command, cwd=output, check=True)
    missing = [module for module in modules if not compiled_path(output, module)]
    if missing:
        raise RuntimeError(f"mypyc built no extension for {missing}")
    shutil.rmtree(output / "build")  # the generated C and object files (the extensions are in place)
    return time.monotonic() - started


def compiled_path(root: Path, module: str) -> Path | None:
    """The extension built for ``module`` under ``root`` (a package's ``__init__.<suffix>``), if any."""
    stem = str(module_path(root, module).with_suffix(""))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if Path(stem + suffix).exists():
            return Path(stem + suffix)
    return None


def loaded_compiled() -> list[str]:
    """The modules of :data:`COMPILED` this interpreter imports as extensions (imports them)."""
    loaded = []
    for module in COMPILED:
        spec = importlib.import_module(module).__spec__
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            loaded.append(module)
    return loaded


def describe_build() -> str:
    """One line for benchmarks: whether this process runs the compiled build."""
    loaded = loaded_compiled()
    if not loaded:
        return "build: interpreted (pure Python)"
    return f"build: mypyc, {len(loaded)} of {len(COMPILED)} modules compiled"


def worker_build(pid: int) -> str:
    """ "mypyc" when process ``pid`` runs the compiled build (its extensions under :data:`OUTPUT` are mapped
    into it), else "interpreted": a benchmark's worker, started with ``PYTHONPATH=build/mypyc`` or not."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "mypyc" if f"{OUTPUT}/" in maps else "interpreted"


def clean(output: Path = OUTPUT) -> None:
    """Remove the compiled build."""
    shutil.rmtree(output, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action = args[0] if args else "build"
    if action == "build":
        seconds = build()
        print(f"built {len(COMPILED)} modules in {OUTPUT} in {seconds:.0f} s; use PYTHONPATH={OUTPUT}")
    elif action == "clean":
        clean()
        print(f"removed {OUTPUT}")
    elif action == "status":
        print(describe_build())
    else:
        print("usage: python -m streams.dev.mypyc_build {build|clean|status}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
