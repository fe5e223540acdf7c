"""Sources of benchmarks/detection_generalization.py: the files, their split and what is known about them.

The split is fixed in advance (tuning: simulator seeds 1-10, shapes "tuning" seeds 100-109; held-out: shapes
"heldout" seeds 200-209 and fresh seeds 300-309, shapes "shifted" seeds 500-509, shapes "distant" seeds
700-709, shapes "far" seeds 800-809, shapes "remote" seeds 900-909, CDNOW, ChurnSim; tuning also shapes
"rhythm" seeds 150-159); see that script's docstring.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from streams.dev.shapes import ShapedBase, ShapesConfig
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.dev.simulator.days import holidays as simulator_holidays
from streams.offline.backtest import OutcomeMode

sys.path.insert(0, str(Path(__file__).parent))
import real_data  # benchmarks/real_data.py

SIM_START = datetime(2026, 6, 1, tzinfo=UTC)
CHURNSIM_SEED = 300
CHURNSIM_HINT = (
    "python3.11 -m venv .venv-churnsim && .venv-churnsim/bin/pip install fightchurn==1.2.0, then "
    "--churnsim-python .venv-churnsim/bin/python"
)


@dataclass(slots=True)
class SourceFile:
    """One event file with what the benchmark knows about it beyond the events."""

    label: str
    events: Path
    as_of_days: tuple[int, ...]
    horizon_days: int = 30
    outcome: OutcomeMode = OutcomeMode.AUTO
    vacation: set[str] = field(default_factory=set)
    holidays: list[tuple[float, float]] = field(default_factory=list)  # epoch-day [start, end)
    control: Path | None = None  # the same base without its holiday (benchmarks/holiday_alerts.py)
    repeat_view: bool = False  # also rank among accounts with >= 2 active days before the as-of point
    shape_of: dict[str, str] = field(default_factory=dict)  # ground truth: account -> archetype / shape


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    split: str  # "tuning" or "heldout"
    description: str
    files: Callable[[Path, argparse.Namespace], Iterator[SourceFile]]


def _day(d: date | datetime) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) // 86_400


def simulator_files(workdir: Path, args: argparse.Namespace) -> Iterator[SourceFile]:
    day0 = _day(SIM_START)
    for seed in args.sim_seeds[: args.files]:
        events, truth_path = workdir / f"sim{seed}.jsonl", workdir / f"sim{seed}.truth.jsonl"
        config = SimulationConfig(seed=seed, accounts=args.accounts, days=args.days, start=SIM_START)
        if not events.exists():
            write_jsonl(Simulation(config), events, truth_path)
        truth = [orjson.loads(line) for line in truth_path.read_bytes().splitlines()]
        holidays = [
            (float(_day(h)), float(_day(h) + 1))
            for year in {SIM_START.year, SIM_START.year + 1}
            for h in simulator_holidays(year)
            if day0 <= _day(h) < day0 + args.days
        ]
        yield SourceFile(
            label=f"seed {seed}",
            events=events,
            as_of_days=tuple(day0 + d for d in range(56, args.days - 30 + 1, 28)),
            vacation={r["account_id"] for r in truth if r["archetype"] == "vacation_dip"},
            shape_of={r["account_id"]: r["archetype"] for r in truth},
            holidays=holidays,
        )


def shapes_files(mix: str, seeds: list[int]) -> Callable[[Path, argparse.Namespace], Iterator[SourceFile]]:
    def files(workdir: Path, args: argparse.Namespace) -> Iterator[SourceFile]:
        for seed in seeds[: args.files]:
            config = ShapesConfig(mix=mix, seed=seed, accounts=args.accounts, days=args.days, start=SIM_START)
            base = ShapedBase(config)
            events, truth_path = workdir / f"{mix}{seed}.jsonl", workdir / f"{mix}{seed}.truth.jsonl"
            if not events.exists():
                write_jsonl(base, events, truth_path)
            control = None
            if base.holidays():
                control = workdir / f"{mix}{seed}.control.jsonl"
                if not control.exists():
                    write_jsonl(ShapedBase(replace(config, holiday=False)), control)
            day0 = _day(SIM_START)
            yield SourceFile(
                label=f"seed {seed}",
                events=events,
                as_of_days=tuple(day0 + d for d in range(56, args.days - 30 + 1, 28)),
                vacation={r["account_id"] for r in base.truth() if r["vacation"]},
                shape_of={r["account_id"]: r["shape"] for r in base.truth()},
                holidays=[(float(_day(a)), float(_day(b))) for a, b in base.holidays()],
                control=control,
            )

    return files


def _epoch_day(y: int, m: int, d: int) -> int:
    return _day(date(y, m, d))


def cdnow_files(workdir: Path, args: argparse.Namespace) -> Iterator[SourceFile]:
    name = "cdnow_full.jsonl" if args.cdnow_full else "cdnow_sample.jsonl"
    try:
        events = real_data.write_cdnow(workdir / name, sample=not args.cdnow_full)
    except real_data.MissingDataError as error:
        print(f"cdnow skipped: {error}", file=sys.stderr)
        return
    yield SourceFile(
        label="full (23,570 customers)" if args.cdnow_full else "sample (2,357 customers)",
        events=events,
        as_of_days=tuple(
            _epoch_day(*ymd) for ymd in ((1997, 7, 1), (1997, 10, 1), (1998, 1, 1), (1998, 4, 1))
        ),
        horizon_days=90,
        outcome=OutcomeMode.INACTIVE,
        repeat_view=True,
    )


def churnsim_files(workdir: Path, args: argparse.Namespace) -> Iterator[SourceFile]:
    stem = f"churnsim-socialnet7-{CHURNSIM_SEED}"
    events, truth = workdir / f"{stem}.jsonl", workdir / f"{stem}.truth.jsonl"
    if not events.exists():
        if args.churnsim_python is None or not Path(args.churnsim_python).exists():
            print(
                f"churnsim skipped: no {events} and no --churnsim-python ({CHURNSIM_HINT})", file=sys.stderr
            )
            return
        command = [
            str(args.churnsim_python),
            str(Path(__file__).with_name("churnsim_export.py")),
            *("--model", "socialnet7", "--seed", str(CHURNSIM_SEED), "--customers", "1000"),
            *("--start", "2020-01-01", "--end", "2020-06-01", "--out", str(events), "--truth", str(truth)),
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    yield SourceFile(
        label=f"socialnet7 seed {CHURNSIM_SEED}",
        events=events,
        as_of_days=tuple(_epoch_day(2020, m, 1) for m in (3, 4, 5)),
    )


SOURCES = (
    Source("simulator", "tuning", "streams.dev.simulator (our own), seeds 1-10", simulator_files),
    Source(
        "shapes-tuning",
        "tuning",
        "streams.dev.shapes, tuning mix, seeds 100-109",
        shapes_files("tuning", list(range(100, 110))),
    ),
    Source(
        "shapes-rhythm",
        "tuning",
        "streams.dev.shapes, rhythm mix (the tuning mix with mid-month seasonal accounts), seeds 150-159 "
        "(added in the tenth pass)",
        shapes_files("rhythm", list(range(150, 160))),
    ),
    Source(
        "shapes-heldout",
        "heldout",
        "streams.dev.shapes, held-out mix (one-time buyers, seasonal, late joiners, holiday week), "
        "seeds 200-209",
        shapes_files("heldout", list(range(200, 210))),
    ),
    Source(
        "shapes-fresh",
        "heldout",
        "streams.dev.shapes, held-out mix, fresh seeds 300-309 (first run for the risk mixture, issue 14)",
        shapes_files("heldout", list(range(300, 310))),
    ),
    Source(
        "shapes-shifted",
        "heldout",
        "streams.dev.shapes, second held-out mix (level and recency churn, late joiners), seeds 500-509 "
        "(added in the sixth pass, never run before its final report)",
        shapes_files("shifted", list(range(500, 510))),
    ),
    Source(
        "shapes-distant",
        "heldout",
        "streams.dev.shapes, third held-out mix (B2B-like: weekday and seasonal accounts, long vacations, "
        "fades and card failures, short leads, a late holiday week), seeds 700-709 (defined in the eighth "
        "pass before any run; run once, for its report)",
        shapes_files("distant", list(range(700, 710))),
    ),
    Source(
        "shapes-far",
        "heldout",
        "streams.dev.shapes, fourth held-out mix (consumer-like: wide levels, very sparse accounts, short "
        "vacations; subtle, slow churn; an early mild holiday week), seeds 800-809 (defined in the ninth "
        "pass before any run; run once, for its report)",
        shapes_files("far", list(range(800, 810))),
    ),
    Source(
        "shapes-remote",
        "heldout",
        "streams.dev.shapes, fifth held-out mix (start-of-month seasonal accounts, sparse accounts, "
        "vacations of 1-3 weeks, churn of every cause, late joiners), seeds 900-909 (defined in the tenth "
        "pass before any run; run once, for its report)",
        shapes_files("remote", list(range(900, 910))),
    ),
    Source(
        "shapes-plain",
        "heldout",
        "streams.dev.shapes, sixth held-out mix (a plain B2B base: mostly steady and weekday-only accounts, "
        "a few of every other shape), seeds 1000-1009 (defined in the tenth pass after the tuning split and "
        "shapes-remote; run once each way to decide the monthly_cycles default)",
        shapes_files("plain", list(range(1000, 1010))),
    ),
    Source(
        "shapes-smb",
        "heldout",
        "streams.dev.shapes, seventh held-out mix (a small-business base: some of every shape, level "
        "churners close to healthy, busier sparse accounts, vacations of 4-18 days, late joiners), seeds "
        "1100-1109 (defined in the eleventh pass before any run on it; run once each way for its stage 2)",
        shapes_files("smb", list(range(1100, 1110))),
    ),
    Source(
        "shapes-thin",
        "heldout",
        "streams.dev.shapes, eighth held-out mix (a thinly engaged base: a quarter sparse, a wide spread of "
        "levels, one-time buyers, level churners, early monthly rhythms, vacations of up to 3 weeks), seeds "
        "1200-1209 (defined in the twelfth pass before any run on it; run once each way for its stage 2)",
        shapes_files("thin", list(range(1200, 1210))),
    ),
    Source(
        "shapes-festive",
        "heldout",
        "streams.dev.shapes, ninth held-out mix (a strong mid-horizon holiday week, mostly steady and "
        "weekday-only accounts, vacations of 5-16 days, late-month rhythms, churn of every cause), seeds "
        "1300-1309 (defined in the seventeenth pass before any run on it)",
        shapes_files("festive", list(range(1300, 1310))),
    ),
    Source(
        "shapes-shop",
        "heldout",
        "streams.dev.shapes, tenth held-out mix (a consumer-like shop: an early-to-mid holiday week, sparse "
        "accounts and one-time buyers, wide levels, vacations of 7-21 days, late joiners), seeds 1400-1419 "
        "(20 files: run with --files 20; defined in the eighteenth pass before any run on it)",
        shapes_files("shop", list(range(1400, 1420))),
    ),
    Source(
        "shapes-office",
        "heldout",
        "streams.dev.shapes, eleventh held-out mix (office software: a late holiday week, many weekday-only "
        "accounts, long vacations, mid-month rhythms, slow fades and card failures), seeds 1500-1519 (20 "
        "files: run with --files 20; defined in the nineteenth pass before any run on it)",
        shapes_files("office", list(range(1500, 1520))),
    ),
    Source(
        "shapes-studio",
        "heldout",
        "streams.dev.shapes, twelfth held-out mix (design tools: a mid-to-late holiday week, steady and "
        "sparse accounts, abrupt drops and silent churners, short vacations, month-end rhythms), seeds "
        "1600-1619 (20 files: run with --files 20; defined in the twentieth pass before any run on it)",
        shapes_files("studio", list(range(1600, 1620))),
    ),
    Source(
        "shapes-agency",
        "heldout",
        "streams.dev.shapes, thirteenth held-out mix (an agency base: a late, strong holiday week, steady "
        "and weekday-only accounts, vacations of 5-21 days, early-month rhythms), seeds 1700-1719 (20 files: "
        "run with --files 20; defined in the twenty-first pass before any run on it)",
        shapes_files("agency", list(range(1700, 1720))),
    ),
    Source(
        "shapes-firm",
        "heldout",
        "streams.dev.shapes, fourteenth held-out mix (B2B software: a late, strong holiday week, many "
        "weekday-only accounts, slow fades and card failures, mid-month rhythms), seeds 1800-1819 (20 files: "
        "run with --files 20; defined in the twenty-second pass before any run on it)",
        shapes_files("firm", list(range(1800, 1820))),
    ),
    Source(
        "shapes-campus",
        "heldout",
        "streams.dev.shapes, fifteenth held-out mix (tools for schools: a mid-horizon holiday week, "
        "weekday-only and steady accounts, long vacations, late joiners), seeds 1900-1919 (20 files: run "
        "with --files 20; defined in the twenty-second pass before any run on it)",
        shapes_files("campus", list(range(1900, 1920))),
    ),
    Source(
        "shapes-works",
        "heldout",
        "streams.dev.shapes, sixteenth held-out mix (manufacturing software: mostly steady and weekday-only, "
        "a late, strong holiday week, slow fades, card failures and abrupt drops), seeds 2000-2019 (20 "
        "files: run with --files 20; defined in the twenty-third pass before any run on it)",
        shapes_files("works", list(range(2000, 2020))),
    ),
    Source(
        "shapes-bureau",
        "heldout",
        "streams.dev.shapes, seventeenth held-out mix (professional services: steady and weekday-only, a "
        "holiday week in the second half, vacations of 7-21 days, late joiners), seeds 2100-2119 (20 files: "
        "run with --files 20; defined in the twenty-third pass before any run on it)",
        shapes_files("bureau", list(range(2100, 2120))),
    ),
    Source(
        "shapes-guild",
        "heldout",
        "streams.dev.shapes, eighteenth held-out mix (membership and community platforms: many sparse and "
        "month-rhythm accounts, a holiday week in the first half, vacations of 6-20 days, fades and silent "
        "churn), seeds 2200-2219 (20 files: run with --files 20; defined in the twenty-fourth pass before "
        "any run on it)",
        shapes_files("guild", list(range(2200, 2220))),
    ),
    Source(
        "cdnow",
        "heldout",
        "CDNOW purchases 1997-98 (real; lifetimes 0.11.3 wheel), outcome: no purchase in 90 days",
        cdnow_files,
    ),
    Source(
        "churnsim",
        "heldout",
        "ChurnSim socialnet7 (fightchurn 1.2.0; churn from low utility), 1000 initial customers, 2020-01..05",
        churnsim_files,
    ),
)


# -- per file ----------------------------------------------------------------------------------------------
