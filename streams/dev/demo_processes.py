"""The processes ``churnwatch demo`` starts and stops: the worker, the local broker, and their ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.dev import kafka_local
from streams.errors import ConfigError
from streams.settings import Settings, environment_of

PORT_RELEASE_SECONDS = 15.0
LOG_TAIL_LINES = 20


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Fail before starting anything when a port is taken (say, by a worker a crashed demo left behind)."""
    if not port_free(host, port):
        raise ConfigError(
            setting, f"{host}:{port} is already in use (another worker or demo still running?): stop it first"
        )


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_ports_free(host: str, ports: list[int], timeout: float = PORT_RELEASE_SECONDS) -> list[int]:
    """Wait until the ports can be bound again; returns those still taken after ``timeout``."""
    deadline = time.monotonic() + timeout
    taken = [port for port in ports if not port_free(host, port)]
    while taken and time.monotonic() < deadline:
        time.sleep(0.1)
        taken = [port for port in taken if not port_free(host, port)]
    return taken


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
    env.update(environment_of(settings))
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo only; the demo stops the worker in order.
        )


def stop_worker(process: subprocess.Popen[bytes], force: threading.Event, grace: float) -> None:
    """SIGTERM (the worker checkpoints and exits), SIGKILL after ``grace`` s or when ``force`` is set."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline and not force.is_set():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.2)
    # Also whatever the worker started in its process group (none today): nothing outlives the demo.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])


def stop_broker(broker: kafka_local.LocalBroker, say: Callable[[str], None]) -> None:
    """Stop the broker the demo started and wait for its ports; a Ctrl-C meanwhile kills it at once."""
    pid = kafka_local.status(broker)

    def kill_now(signum: int, frame: Any) -> None:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    previous = signal.signal(signal.SIGINT, kill_now)
    try:
        say("stopping the local Kafka broker ...")
        kafka_local.stop(broker)
    finally:
        signal.signal(signal.SIGINT, previous)
    taken = wait_ports_free("127.0.0.1", [broker.port, broker.port + 1])
    say("local Kafka broker stopped" + (f" (ports {taken} still in use)" if taken else ""))
