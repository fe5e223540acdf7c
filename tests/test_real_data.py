"""benchmarks/real_data.py: CDNOW purchase rows become valid canonical events that replay accepts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from streams.events import UsageEvent, validate
from streams.offline.replay import run_replay


def _load() -> ModuleType:
    path = Path(__file__).parents[1] / "benchmarks" / "real_data.py"
    spec = importlib.util.spec_from_file_location("real_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_data"] = module
    spec.loader.exec_module(module)
    return module


real_data = _load()

MASTER = """ customer_id  date number_of_cds  dollar_value
 00002 19970112  5   77.00
 00001 19970101  1   11.77
 00002 19980301  0    0.00
 00001 19970101  2   20.00
"""
SAMPLE = """ 00004 0001 19970101  2   29.33
 00004 0001 19970118  2   29.73
"""


def test_cdnow_rows_become_sorted_valid_usage_events(tmp_path: Path) -> None:
    source = tmp_path / "master.txt"
    source.write_text(MASTER)
    lines = real_data.cdnow_lines(source)
    decoded = [validate(orjson.loads(line), min_ts_ms=None) for line in lines]
    events = [e for e in decoded if isinstance(e, UsageEvent)]
    assert len(events) == len(decoded)
    assert [(e.account_id, e.count) for e in events] == [
        ("cdnow-00001", 1),
        ("cdnow-00001", 2),
        ("cdnow-00002", 5),
        ("cdnow-00002", 1),  # zero CDs still counts as one purchase
    ]
    assert [e.ts_ms for e in events] == sorted(e.ts_ms for e in events)
    assert orjson.loads(lines[2])["ts"] == "1997-01-12T12:00:00Z"
    result = run_replay(lines)
    assert (result.events, result.bad_lines) == (4, 0)


def test_sample_format_reads_the_date_after_both_ids(tmp_path: Path) -> None:
    source = tmp_path / "sample.txt"
    source.write_text(SAMPLE)
    bodies = [orjson.loads(line) for line in real_data.cdnow_lines(source)]
    assert [(b["account_id"], b["ts"][:10], b["count"]) for b in bodies] == [
        ("cdnow-00004", "1997-01-01", 2),
        ("cdnow-00004", "1997-01-18", 2),
    ]


def test_missing_package_says_how_to_install() -> None:
    with pytest.raises(real_data.MissingDataError, match=r"pip install -e '\.\[bench\]'"):
        real_data.packaged_file("no-such-distribution-churnwatch", "x.txt")
