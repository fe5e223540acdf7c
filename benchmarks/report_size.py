"""Size of ``churnwatch replay --html`` for a large customer base (issue 16: <= 5 MB at 10 k accounts).

Usage::

    .venv/bin/python benchmarks/report_size.py --accounts 10000 --days 120 --seed 5 --workdir /tmp/bench

Simulates the base to a JSONL file (skipped when it is already there), replays it with ``--html`` the way a
user would (through the CLI), and prints the HTML's size, its number of inline charts and the replay's time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/report-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    events = args.workdir / f"sim-{args.accounts}-{args.days}-{args.seed}.jsonl"
    cli = [sys.executable, "-m", "streams"]
    if not events.exists():
        subprocess.run(
            [
                *cli,
                "simulate",
                "--out",
                str(events),
                "--accounts",
                str(args.accounts),
                "--days",
                str(args.days),
                "--seed",
                str(args.seed),
                "--start",
                "2026-01-01",
            ],
            check=True,
        )
    html = args.workdir / "report.html"
    started = time.perf_counter()
    subprocess.run([*cli, "replay", str(events), "--html", str(html)], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    text = html.read_text()
    lines = sum(1 for _ in events.open("rb"))
    size = len(text.encode())
    print(
        f"accounts {args.accounts:,}, days {args.days}, events {lines:,}: report.html {size:,} bytes "
        f"({size / 2**20:.2f} MiB), {text.count('<svg')} inline SVG charts, "
        f"{text.count('<tr>') - 1} table rows; replay with --html took {elapsed:.0f} s wall clock"
    )


if __name__ == "__main__":
    main()
