"""``churnwatch worker`` whose detectors take ``SLOW_OBSERVE_SECONDS`` per account: a sweep of a few hundred
accounts as long as one of a hundred thousand. The first account observed writes the time into
``SWEEP_MARK`` (a path).

Run as ``python -m tests.slow_sweep_worker worker``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from detectors.monitor import AccountMonitor
from streams.cli.main import main

observe = AccountMonitor.observe


def slow_observe(self: AccountMonitor, *args: Any, **kwargs: Any) -> Any:
    mark = Path(os.environ["SWEEP_MARK"])
    if not mark.exists():
        mark.write_text(str(time.time()))  # when the first sweep began
    time.sleep(float(os.environ["SLOW_OBSERVE_SECONDS"]))  # the detectors' work, made long
    return observe(self, *args, **kwargs)


if __name__ == "__main__":
    AccountMonitor.observe = slow_observe  # type: ignore[method-assign]
    main()
