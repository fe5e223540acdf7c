"""The HTML backtest report and `churnwatch explain` as a person sees them: rendered by headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM_TIMEOUT = 180


@dataclass(frozen=True)
class Run:
    html: Path
    scores: Path
    events: Path
    tmp: Path


def churnwatch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT,
        check=True,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("report")
    events = tmp / "events.jsonl"
    churnwatch(
        "simulate", "--out", str(events), "--accounts", "150", "--days", "120", "--seed", "3",
        "--start", "2026-01-01",
    )  # fmt: skip
    html, scores = tmp / "report.html", tmp / "scores.csv"
    churnwatch("replay", str(events), "--html", str(html), "--scores", str(scores))
    return Run(html=html, scores=scores, events=events, tmp=tmp)


def test_screenshot_is_not_blank(run: Run) -> None:
    shot = run.tmp / "out.png"
    chromium(run.tmp, f"--screenshot={shot}", "--window-size=1400,2400", run.html.as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 2400)
    top = image.crop((0, 0, 1400, 600))  # what a reader sees first: title and headline numbers
    colors: list[tuple[int, tuple[int, int, int]]] = image.getcolors(1 << 24) or []  # type: ignore[assignment]
    ink = sum(count for count, rgb in colors if min(rgb) < 200) / (1400 * 2400)
    assert ink > 0.03, f"only {ink:.1%} of the page has ink"
    assert len(colors) > 100  # text, bars, lines and bands in several colours, not one flat fill
    top_colors: list[tuple[int, tuple[int, int, int]]] = top.getcolors(1 << 24) or []  # type: ignore[assignment]
    assert any(min(rgb) < 100 for _, rgb in top_colors)


def test_rendered_dom_has_the_charts_and_the_account_list(run: Run) -> None:
    dom = chromium(run.tmp, "--dump-dom", run.html.as_uri()).stdout
    tags = [tag for tag in re.findall(r"<svg[^>]*>", dom) if 'class="chart"' in tag]
    charts = [re.search(r'aria-label="([^"]*)"', tag).group(1) for tag in tags]  # type: ignore[union-attr]
    assert any("lead time" in label for label in charts)
    assert any("calibration" in label for label in charts)
    assert any("per week" in label for label in charts)
    timelines = [label for label in charts if "usual range" in label]
    assert 1 <= len(timelines) <= 12
    with run.scores.open() as handle:
        open_episodes = [row["account_id"] for row in csv.DictReader(handle) if row["severity"]]
    table = re.search(r'<table id="at-risk">(.*?)</table>', dom, re.S)
    assert table is not None
    listed = re.findall(r"<tr><td>\d+</td><td>([^<]*)</td>", table.group(1))
    assert listed == open_episodes[:200]  # same order as the scores CSV: by revenue at risk
    assert 'id="baselines"' in dom and "churnwatch risk" in dom
    # Nothing fetched at view time: no script, stylesheet, image or frame from anywhere.
    assert not re.findall(r'(?:src|href)="(?!#|data:)[^"]*"', dom)
    assert "<script" not in dom and "<link" not in dom and "<img" not in dom


def test_explain_tells_one_accounts_story(run: Run) -> None:
    with run.scores.open() as handle:
        rows = list(csv.DictReader(handle))
    account = next(row for row in rows if row["severity"] or row["episode_id"] or row["flags"])["account_id"]
    out_json, out_html = run.tmp / "story.json", run.tmp / "story.html"
    done = churnwatch(
        "explain", account, "--events", str(run.events), "--json", str(out_json), "--html", str(out_html)
    )
    assert account in done.stdout and "activity" in done.stdout and "risk" in done.stdout
    story = json.loads(out_json.read_text())
    row = next(r for r in rows if r["account_id"] == account)
    assert story["risk"] == pytest.approx(float(row["risk"]), abs=1e-4)  # the same replay, the same answer
    assert story["daily"] and all(day["activity"] >= 0 for day in story["daily"])
    assert [r for r in story["reasons"]] == [r for r in row["reasons"].split("; ") if r]
    dom = chromium(run.tmp, "--dump-dom", out_html.as_uri()).stdout
    assert 'class="chart"' in dom and account in dom
