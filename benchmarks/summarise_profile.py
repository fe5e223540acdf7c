"""Summarise py-spy collapsed stacks (``--format raw``): where a worker's samples went.

Usage::

    .venv/bin/python benchmarks/summarise_profile.py PROFILE-worker0.txt [--top 25]

Prints the share of samples spent inside (inclusive) and directly in (self) each function, grouped as
``file:function``, so the hot path's cost can be written down before and after a change.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{file}:{match['func']}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # py-spy occasionally writes a truncated line
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";")]
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    print(f"{total} samples")
    print("\ninclusive (share of samples with the function on the stack)")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {name}")
    print("\nself (share of samples in the function itself)")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
