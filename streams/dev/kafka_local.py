"""The embedded single-node Apache Kafka broker (KRaft) that the demo and the tests run on loopback.

Kafka's jars come from Maven Central through ``deploy/kafka/pom.xml`` into ``<kafka_home>/libs``; the
broker is
the same ``kafka.Kafka`` main class that Kafka's own start script runs. The controller listens on
``port + 1``. State lives under ``<kafka_home>/broker-<port>/`` so several brokers (say a test one beside the
demo one) can coexist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiokafka.admin import AIOKafkaAdminClient

from streams.errors import ConfigError, KafkaUnavailableError

log = structlog.get_logger(__name__)

POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0

LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


@dataclass(frozen=True, slots=True)
class LocalBroker:
    """Paths and ports of one embedded broker."""

    home: Path
    port: int

    @property
    def directory(self) -> Path:
        return self.home / f"broker-{self.port}"

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def server_properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.port + 1}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.port + 1}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.directory / 'data'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                # Test and demo consumer groups form at once instead of waiting 3 s for more members.
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.retention.hours=168",
                "",
            ]
        )


def ensure_jars(broker: LocalBroker) -> None:
    """Fetch Kafka's jars with Maven unless the cache already holds them."""
    if any(broker.libs.glob("kafka_2.13-*.jar")):
        return
    if shutil.which("mvn") is None:
        raise KafkaUnavailableError("Maven ('mvn') is needed once to fetch Kafka's jars from Maven Central")
    log.info("kafka.fetching_jars", into=str(broker.libs))
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={broker.libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaUnavailableError(
            f"fetching Kafka's jars failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def _java(broker: LocalBroker, *args: str, log_config: Path | None = None) -> list[str]:
    java = os.environ.get("JAVA_HOME")
    executable = str(Path(java) / "bin" / "java") if java else "java"
    options = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]
    if log_config is not None:
        options.append(f"-Dlog4j2.configurationFile={log_config}")
    return [executable, *options, "-cp", f"{broker.libs}/*", *args]


def _format_storage(broker: LocalBroker, properties: Path) -> None:
    if (broker.directory / "data" / "meta.properties").exists():
        return
    cluster_id = uuid.uuid4().hex[:22]
    result = subprocess.run(
        _java(broker, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaUnavailableError(f"formatting KRaft storage failed: {result.stdout}{result.stderr}")


def _read_pid(broker: LocalBroker) -> int | None:
    try:
        pid = int(broker.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def wait_until_ready(
    bootstrap: str, timeout: float, *, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until the broker answers a metadata request (not a fixed sleep: the JVM takes a few seconds)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise KafkaUnavailableError(f"the Kafka broker exited with code {process.returncode}")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # any connection failure means "not yet"
            last_error = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.25)
    raise KafkaUnavailableError(f"Kafka at {bootstrap} did not answer within {timeout:.0f} s: {last_error!r}")


def status(broker: LocalBroker) -> int | None:
    """PID of the running embedded broker, or None."""
    return _read_pid(broker)


def start(broker: LocalBroker, *, timeout: float = START_TIMEOUT_SECONDS) -> int:
    """Start the embedded broker (formatting storage the first time) and wait until it answers.

    Returns the broker's PID; an already running broker is left alone.
    """
    running = _read_pid(broker)
    if running is not None:
        asyncio.run(wait_until_ready(broker.bootstrap, timeout))
        return running
    for port in (broker.port, broker.port + 1):
        if _port_in_use(port):
            raise ConfigError("CHURNWATCH_KAFKA_PORT", f"port {port} on 127.0.0.1 is already in use")
    ensure_jars(broker)
    broker.directory.mkdir(parents=True, exist_ok=True)
    properties = broker.directory / "server.properties"
    properties.write_text(broker.server_properties())
    log_config = broker.directory / "log4j2.properties"
    log_config.write_text(LOG4J2_PROPERTIES.format(log_file=broker.log_file))
    _format_storage(broker, properties)
    console = (broker.directory / "console.log").open("ab")
    process = subprocess.Popen(
        _java(broker, "kafka.Kafka", str(properties), log_config=log_config),
        stdout=console,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the broker in order.
    )
    broker.pid_file.write_text(str(process.pid))
    try:
        asyncio.run(wait_until_ready(broker.bootstrap, timeout, process=process))
    except KafkaUnavailableError:
        stop(broker)
        raise
    log.info("kafka.started", bootstrap=broker.bootstrap, pid=process.pid)
    return process.pid


def stop(broker: LocalBroker, *, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the embedded broker (SIGTERM, then SIGKILL after ``timeout``). Returns whether one was running."""
    pid = _read_pid(broker)
    if pid is None:
        broker.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    broker.pid_file.unlink(missing_ok=True)
    log.info("kafka.stopped", pid=pid)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the broker is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
