"""Real customer-activity data shipped by PyPI packages, converted to canonical churnwatch events.

CDNOW (``lifetimes`` package, ``lifetimes/datasets/CDNOW_master.txt``): every purchase of the 23,570
customers who first bought at the CD retailer CDNOW in the first quarter of 1997, through June 1998 (69,659
rows: customer id, date, number of CDs, dollar value). The data set was published by Fader and Hardie with
their BG/NBD and Pareto/NBD papers; it ships inside the MIT-licensed ``lifetimes`` 0.11.3 wheel (no separate
licence statement comes with the data). ``CDNOW_sample.txt`` is the papers' 1/10 sample (2,357 customers).

Install (benchmark only)::

    .venv/bin/pip install -e '.[bench]'

Only the data file is read (located through the installed distribution's metadata): ``lifetimes`` itself is
not imported, so its pandas/autograd dependencies are not needed at run time.

Each purchase row becomes one usage event at noon UTC of its day::

    {"type": "usage", "account_id": "cdnow-00002", "ts": "1997-01-12T12:00:00Z", "event": "purchase",
     "count": 5}

There are no billing events: the outcome is inactivity (no purchase within the horizon).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import orjson

INSTALL_HINT = "install the benchmark extra: .venv/bin/pip install -e '.[bench]'"


class MissingDataError(Exception):
    """A data set's package is not installed."""


def packaged_file(distribution: str, relative: str) -> Path:
    """A data file inside an installed distribution, without importing it."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingDataError(f"{distribution} is not installed; {INSTALL_HINT}") from None
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise MissingDataError(f"{relative} not found in {distribution} {dist.version}")
    return path


def cdnow_path(sample: bool = False) -> Path:
    name = "CDNOW_sample.txt" if sample else "CDNOW_master.txt"
    return packaged_file("lifetimes", f"lifetimes/datasets/{name}")


def cdnow_lines(source: Path) -> list[bytes]:
    """Canonical usage events (JSON lines) of a CDNOW purchase file, sorted by time then account.

    The master file's columns are customer id, date, CDs, dollars; the sample's have the customer's id in the
    master file after its own id, so the date is taken as the first 8-digit column after the id.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     f = Path(tmp) / "c.txt"
    ...     _ = f.write_text(" 00002 19970112  5   77.00\\n 00001 19970101  1   11.77\\n")
    ...     cdnow_lines(f)[0]
    b'{"type":"usage","account_id":"cdnow-00001","ts":"1997-01-01T12:00:00Z","event":"purchase","count":1}'
    """
    rows: list[tuple[str, str, int]] = []
    for text in source.read_text().splitlines():
        fields = text.split()
        if not fields or not fields[0].isdigit():
            continue  # header or blank
        date_index = next(i for i, f in enumerate(fields[1:], start=1) if len(f) == 8 and f.isdigit())
        day, cds = fields[date_index], int(float(fields[date_index + 1]))
        rows.append((day, fields[0], max(cds, 1)))
    rows.sort()
    return [
        orjson.dumps(
            {
                "type": "usage",
                "account_id": f"cdnow-{customer}",
                "ts": f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00Z",
                "event": "purchase",
                "count": cds,
            }
        )
        for day, customer, cds in rows
    ]


def write_cdnow(destination: Path, sample: bool = False) -> Path:
    if not destination.exists():
        destination.write_bytes(b"\n".join(cdnow_lines(cdnow_path(sample))) + b"\n")
    return destination
