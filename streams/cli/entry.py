"""The ``churnwatch`` command's entry point. Importing the command line takes about a second (numpy, River,
Faust); a Ctrl-C then ends it as it ends a running command (exit code 130), not with a traceback."""

from __future__ import annotations


def main() -> None:
    try:
        from streams.cli.main import main as run
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    run()
