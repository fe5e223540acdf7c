"""The Kubernetes example only uses settings that exist and keeps secrets out of plain env values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.settings import Settings, setting, settings_table

MANIFEST = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "churnwatch.yaml"
SECRET_SETTINGS = {"sasl_password", "slack_webhook_url", "webhook_url", "webhook_secret"}


def test_worker_env_names_real_settings_and_reads_secrets_from_files() -> None:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    known = {setting.variable for setting in settings_table().values()}
    secret_files = {f"CHURNWATCH_{name.upper()}_FILE" for name in SECRET_SETTINGS}
    names = {item["name"] for item in env}
    assert names <= known | secret_files, names - known - secret_files
    assert not names & {f"CHURNWATCH_{name.upper()}" for name in SECRET_SETTINGS}  # no secret inline
    values = {
        item["name"].removeprefix("CHURNWATCH_").lower(): item["value"]
        for item in env
        if item["name"] in known
    }
    # The whole configuration validates (with the password the secret file would provide).
    settings = Settings(**values, sasl_password="from-the-secret-file")  # type: ignore[arg-type]
    assert settings.kafka.security_protocol == "SASL_SSL" and settings.topics.partitions == 16


def worker_container() -> tuple[dict[str, Any], dict[str, Any]]:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    pod = next(doc for doc in documents if doc["kind"] == "Deployment")["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def test_grace_period_exceeds_the_bounded_shutdown() -> None:
    pod, container = worker_container()
    env = {item["name"]: item.get("value") for item in container["env"]}
    configured = env.get("CHURNWATCH_SHUTDOWN_TIMEOUT_SECONDS")
    bound = float(configured) if configured else setting("shutdown_timeout_seconds").info.default
    # The worker exits by itself within the bound; Kubernetes' SIGKILL comes only after the grace period.
    assert pod["terminationGracePeriodSeconds"] > bound


def test_probes_use_the_readiness_and_liveness_endpoints() -> None:
    _, container = worker_container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/churnwatch/ready/"
    assert container["livenessProbe"]["httpGet"]["path"] == "/churnwatch/live/"
    # A slow answer (a long detector sweep holding the event loop) must not get a worker restarted.
    liveness = container["livenessProbe"]
    patience = liveness["periodSeconds"] * liveness.get("failureThreshold", 3)
    assert patience >= 60 and liveness.get("timeoutSeconds", 1) >= 5
