"""docker-compose.yml cannot be run here (no Docker engine): check it against what churnwatch expects."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from streams.dev import kafka_local
from streams.settings import setting, settings_table

REPO = Path(__file__).resolve().parent.parent


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_kafka_image_matches_the_broker_version_we_test_against() -> None:
    # The POM the local broker fetches its jars with, without `deploy/dev setup` (kafka_local.ensure_jars).
    assert kafka_local.POM == REPO / "deploy" / "kafka" / "pom.xml"
    pom = kafka_local.POM.read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version is not None
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{version.group(1)}"


def test_kraft_settings_are_complete() -> None:
    # The apache/kafka image drops all its defaults once one KAFKA_* variable is set.
    env = compose()["services"]["kafka"]["environment"]
    for name in (
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    ):
        assert name in env, name
    listeners = {entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")}
    mapped = {entry.split(":")[0] for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    assert listeners <= mapped
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners


def test_churnwatch_services_use_known_settings_and_reach_kafka() -> None:
    services = compose()["services"]
    known = {setting.variable for setting in settings_table().values()}
    kafka_listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("worker", "simulator"):
        env = services[name]["environment"]
        assert set(env) <= known, set(env) - known
        assert env["CHURNWATCH_BOOTSTRAP_SERVERS"] in kafka_listeners
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert (REPO / services["worker"]["build"] / "Dockerfile").exists()


def test_worker_stop_grace_exceeds_its_bounded_shutdown_and_health_is_readiness() -> None:
    worker = compose()["services"]["worker"]
    grace = worker["stop_grace_period"]
    bound = setting("shutdown_timeout_seconds").info.default
    assert grace.endswith("s") and float(grace[:-1]) > bound
    assert "/churnwatch/ready/" in " ".join(worker["healthcheck"]["test"])


def test_observability_stack_mounts_the_repository_files() -> None:
    services = compose()["services"]
    mounts = {
        name: [
            volume.split(":")[0] for volume in services[name].get("volumes", []) if volume.startswith("./")
        ]
        for name in ("prometheus", "alertmanager", "grafana")
    }
    for paths in mounts.values():
        for path in paths:
            assert (REPO / path).exists(), path
    assert "./deploy/grafana/provisioning" in mounts["grafana"]
    assert "./deploy/grafana/dashboards" in mounts["grafana"]
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t
        for job in scrape["scrape_configs"]
        if job["job_name"] == "churnwatch"
        for config in job["static_configs"]
        for t in config["targets"]
    ]
    port = services["worker"]["environment"]["CHURNWATCH_WEB_PORT"]
    assert targets == [f"worker:{port}"]
    assert services["worker"]["environment"]["CHURNWATCH_WEB_HOST"] == "0.0.0.0"  # reachable by Prometheus
