"""The Kubernetes example only uses settings that exist and keeps secrets out of plain env values."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.settings import Settings

MANIFEST = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "churnwatch.yaml"
SECRET_SETTINGS = {"sasl_password", "slack_webhook_url", "webhook_url", "webhook_secret"}


def test_worker_env_names_real_settings_and_reads_secrets_from_files() -> None:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    known = {f"CHURNWATCH_{name.upper()}" for name in Settings.model_fields}
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
    assert settings.security_protocol == "SASL_SSL" and settings.partitions == 16
