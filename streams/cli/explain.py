"""``churnwatch explain ACCOUNT --events FILE``: one account's story, offline (registered on the main app)."""

from __future__ import annotations

import html as html_text
from pathlib import Path
from typing import Annotated

import orjson
import typer

from streams.cli.checks import UsageError, output_file
from streams.cli.progress import report_console
from streams.cli.setting_flags import replay_settings
from streams.events import InvalidEventError, parse_ts
from streams.offline.backtest import EveryNthMidnight
from streams.offline.explain import Story, account_story, print_story, story_dict, story_from_dict
from streams.offline.replay import run_replay
from streams.offline.replay_input import STDIN, InputError, InputRules
from streams.offline.report_charts import timeline
from streams.offline.sorted_input import SortedInput, read_source


def explain(
    account: Annotated[str, typer.Argument(help="Account id.")],
    events: Annotated[
        str | None,
        typer.Option("--events", help="JSONL event file (gzip or not, - for stdin) to replay offline."),
    ] = None,
    worker: Annotated[
        str | None,
        typer.Option("--worker", help="Ask a running worker instead, e.g. http://127.0.0.1:6066."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Tell the story as of this time (RFC 3339).")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the story as an HTML page.")] = None,
    json: Annotated[Path | None, typer.Option("--json", help="Also write the story as JSON.")] = None,
) -> None:
    """One account's story: daily activity vs its usual range, risk, severity, reasons and episodes.

    Replays the whole file (the population matters: segment percentiles and the outage guard) and tells
    the account's story at the end of the file or at --as-of; with --worker, the worker's current view.
    """
    output_file(html, "--html")
    output_file(json, "--json")
    if (events is None) == (worker is None):
        raise UsageError("give either --events FILE (offline) or --worker URL (a running worker)")
    if worker is not None:
        if as_of is not None:
            raise UsageError("--as-of needs --events: a worker tells the story as of its own clock")
        story = _worker_story(account, worker)
    else:
        story = _story(account, str(events), _as_of(as_of))
    print_story(report_console(), story)
    if json is not None:
        json.write_bytes(orjson.dumps(story_dict(story), option=orjson.OPT_INDENT_2))
    if html is not None:
        html.write_text(story_html(story))


def _as_of(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_ts(text, min_ts_ms=None)
    except InvalidEventError as error:
        raise UsageError(f"--as-of: {error.detail.replace(repr('ts'), repr(text))}") from None


def _story(account: str, source: str, as_of_ms: int | None) -> Story:
    try:
        settings = replay_settings({})
        rules = InputRules.from_settings(settings, now_ms=None)
        with SortedInput(rules) as sorted_input:
            read_source(source, sorted_input)
            result = run_replay(
                sorted_input,
                config=settings.detection.detector_config(),
                window_config=settings.windows.window_config(),
                as_of_ms=as_of_ms,
                snapshot_ms=EveryNthMidnight(7),
                record_activity=True,
            )
    except InputError as error:
        raise UsageError(str(error)) from None
    story = account_story(result, account)
    if story is None:
        name = "stdin" if source == STDIN else source
        raise UsageError(f"account {account!r} has no valid event in {name} (up to the clock)")
    return story


def _worker_story(account: str, base_url: str) -> Story:
    import urllib.parse

    import httpx

    url = f"{base_url.rstrip('/')}/churnwatch/accounts/{urllib.parse.quote(account, safe='')}/"
    try:
        response = httpx.get(url, timeout=30)
    except httpx.HTTPError as error:
        raise UsageError(f"--worker {base_url}: cannot reach the worker ({type(error).__name__})") from None
    if response.status_code == 404:
        raise UsageError(f"the worker at {base_url} holds no state for account {account!r}")
    if response.status_code != 200 or "explained" not in response.json():
        raise UsageError(f"--worker {base_url}: unexpected answer (HTTP {response.status_code})")
    return story_from_dict(response.json()["explained"])


def story_html(story: Story) -> str:
    """A small self-contained page: the timeline chart and the same facts as the terminal view."""
    e = html_text.escape
    reasons = "".join(f"<li>{e(r)}</li>" for r in story.reasons) or "<li>none</li>"
    episodes = "".join(
        f"<tr><td>{e(ep.episode_id)}</td><td>{e(ts)}</td><td>{e(tr)}</td><td>{e(sev)}</td></tr>"
        for ep in story.episodes
        for ts, tr, sev in ep.transitions
    )
    chart = timeline(story.timeline, title=f"{story.account_id}: activity vs its usual range, risk, alerts")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(story.account_id)}</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:1150px;margin:24px auto}"
        "td,th{padding:3px 8px;text-align:left}</style></head><body>"
        f"<h1>{e(story.account_id)}</h1><p>as of {e(story.as_of or '-')}; plan {e(story.plan or '-')}, "
        f"MRR {e(str(story.mrr or '-'))}; risk <b>{_pct(story.risk)}</b>, "
        f"severity {e(story.severity or 'none')}, "
        f"revenue at risk {story.revenue_at_risk:,.2f}"
        f"{f'; cancelled at {e(story.cancelled)}' if story.cancelled else ''}</p>{chart}"
        f"<h2>Active reasons</h2><ul>{reasons}</ul><h2>Episode history</h2>"
        "<table><tr><th>episode</th><th>time</th><th>transition</th><th>severity</th></tr>"
        f"{episodes}</table></body></html>"
    )


def _pct(value: float | None) -> str:
    return "not listed" if value is None else f"{value:.0%}"
