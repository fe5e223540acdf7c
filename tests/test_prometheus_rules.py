"""Prometheus, Alertmanager and Grafana files under deploy/ are valid and agree with each other and the docs.

promtool (Debian package ``prometheus``; ``deploy/dev test`` installs it) checks the config and rules and runs
the rule unit tests in deploy/prometheus/tests. amtool (``prometheus-alertmanager``) checks the Alertmanager
config when installed; a structural check of that file always runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.gateway.metrics import GatewayMetrics
from streams.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "deploy" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RECORDING = PROMETHEUS / "rules" / "recording.yml"
ALERTS = PROMETHEUS / "rules" / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
OBSERVABILITY_MD = REPO / "docs" / "observability.md"

PROMETHEUS_UID = "churnwatch-prometheus"
API_UID = "churnwatch-api"
CAMEL_CASE = re.compile(r"^(?:[A-Z][a-z0-9]+)+$")
RECORD_NAME = re.compile(r"^churnwatch:[a-z0-9_]+:[a-z0-9_]+$")
RECORDED_REF = re.compile(r"churnwatch:[a-z0-9_]+:[a-z0-9_]+")
METRIC_REF = re.compile(r"\bchurnwatch_[a-z0-9_]+")


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: `deploy/dev test` installs it (apt-get install prometheus)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return rules(ALERTS)


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules(RECORDING)}


def dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows
    return found


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for path in DASHBOARDS
        for panel in panels(dashboard(path))
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def markdown_anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


# -- promtool ------------------------------------------------------------------------------------------------


def test_promtool_check_config_resolves_rule_files_relative_to_the_config(tmp_path: Path) -> None:
    done = promtool("check", "config", str(CONFIG), cwd=tmp_path)  # paths must not depend on the cwd
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 2 rule files found" in done.stdout + done.stderr


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", str(RECORDING), str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert f"SUCCESS: {len(rules(RECORDING))} rules found" in output
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_promtool_rule_unit_tests_pass() -> None:
    assert len(RULE_TESTS) >= 2
    done = promtool("test", "rules", *(str(path) for path in RULE_TESTS))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("SUCCESS") == len(RULE_TESTS), output
    assert "FAILED" not in output


def test_every_alert_rule_is_unit_tested_firing_and_not_firing() -> None:
    tests = [case for path in RULE_TESTS for case in yaml.safe_load(path.read_text())["tests"]]
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                fired |= {(check["alertname"], a["exp_labels"]["severity"]) for a in check["exp_alerts"]}
            else:
                quiet.add(check["alertname"])
    for rule in alert_rules():
        assert (rule["alert"], rule["labels"]["severity"]) in fired, f"{rule['alert']} never tested firing"
        assert rule["alert"] in quiet, f"{rule['alert']} never tested not firing"


def test_recording_rules_are_unit_tested() -> None:
    tested = {
        check["expr"]
        for path in RULE_TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("promql_expr_test", [])
    }
    assert len(tested & recorded_names()) >= 2, tested


# -- rule conventions ----------------------------------------------------------------------------------------


def test_alert_rules_follow_conventions() -> None:
    anchors = markdown_anchors(OBSERVABILITY_MD.read_text())
    names = set()
    for rule in alert_rules():
        name = rule["alert"]
        names.add(name)
        assert CAMEL_CASE.match(name) and name.startswith("Churnwatch"), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name} has no {key} annotation"
        document, _, anchor = annotations["runbook_url"].partition("#")
        assert document == "docs/observability.md" and anchor in anchors, (name, annotations["runbook_url"])
        assert re.search(r'job="churnwatch"', rule["expr"]), f'{name} must select job="churnwatch"'
    assert names == {
        "ChurnwatchWorkerDown",
        "ChurnwatchConsumerLagGrowing",
        "ChurnwatchDeadLetterRateHigh",
        "ChurnwatchAlertDeliveryFailing",
        "ChurnwatchNoEvents",
        "ChurnwatchStateRecoverySlow",
        "ChurnwatchWorkerNotReading",
    }


def test_recording_rules_follow_conventions() -> None:
    for rule in rules(RECORDING):
        assert RECORD_NAME.match(rule["record"]), rule["record"]
        recorded = RECORDED_REF.findall(rule["expr"])
        # Raw series only from the churnwatch jobs (another job may export the same names).
        assert recorded or re.search(r'job="churnwatch(-gateway)?"', rule["expr"]), rule["record"]
        assert set(recorded) <= recorded_names(), rule["record"]


def exported_names(*builders: Callable[[CollectorRegistry], object]) -> dict[str, str]:
    """Sample name -> metric type for everything streams/metrics.py (or ``builders``) define."""
    registry = CollectorRegistry()
    for build in builders or (Metrics.build,):
        build(registry)
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
    }
    return {
        f"{family.name}{suffix}": family.type
        for family in registry.collect()
        for suffix in suffixes[family.type]
    }


def test_metric_names_in_rules_and_dashboards_are_defined_in_the_metrics_modules() -> None:
    sources = [rule["expr"] for rule in rules(RECORDING) + alert_rules()] + dashboard_exprs()
    defined = exported_names(Metrics.build, GatewayMetrics.build)  # the workers' and the gateways'
    unknown = {name for expr in sources for name in METRIC_REF.findall(expr)} - set(defined)
    assert not unknown, unknown


def test_prometheus_config_scrapes_workers_and_alerts_to_alertmanager() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [target for static in jobs["churnwatch"]["static_configs"] for target in static["targets"]]
    assert targets == ["worker:6066"]
    assert jobs["churnwatch"].get("metrics_path", "/metrics") == "/metrics"
    assert [CONFIG.parent / path for path in config["rule_files"]] == [RECORDING, ALERTS]
    alertmanagers = config["alerting"]["alertmanagers"]
    targets = [t for am in alertmanagers for s in am["static_configs"] for t in s["targets"]]
    assert targets == ["alertmanager:9093"]


# -- Alertmanager --------------------------------------------------------------------------------------------


def test_alertmanager_config_structure() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    text = ALERTMANAGER.read_text()
    assert "hooks.slack.com" not in text and not re.search(r"^\s*(slack_)?api_url:", text, flags=re.MULTILINE)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    route = config["route"]
    assert "alertname" in route["group_by"]
    pipeline_routes = [r for r in route.get("routes", []) if any("Churnwatch" in m for m in r["matchers"])]
    assert pipeline_routes
    for target in [route, *pipeline_routes]:
        slack = receivers[target["receiver"]]["slack_configs"]
        assert [s["api_url_file"] for s in slack] == ["/etc/alertmanager/slack_webhook_url"]
    inhibit = [(rule["source_matchers"], rule["target_matchers"]) for rule in config["inhibit_rules"]]
    assert (['severity = "critical"'], ['severity = "warning"']) in inhibit
    critical_over_warning = next(
        rule for rule in config["inhibit_rules"] if rule["source_matchers"] == ['severity = "critical"']
    )
    assert "alertname" in critical_over_warning["equal"]


def test_alertmanager_config_is_valid_and_routes_pipeline_alerts_to_slack() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        # Not skipped silently: test_alertmanager_config_structure covers the file; say what was not run.
        warnings.warn(
            "amtool not installed (apt-get install prometheus-alertmanager): only the structural "
            "check of alertmanager.yml ran",
            stacklevel=1,
        )
        return
    done = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    for labels in (
        ["alertname=ChurnwatchWorkerDown", "severity=critical"],
        ["alertname=ChurnwatchNoEvents", "severity=warning"],
    ):
        routed = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert routed.returncode == 0, routed.stdout + routed.stderr
        assert routed.stdout.strip() == "slack-churnwatch", (labels, routed.stdout)


# -- Grafana -------------------------------------------------------------------------------------------------


def test_grafana_datasources_have_the_fixed_uids() -> None:
    provisioning = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    sources = {source["uid"]: source for source in provisioning["datasources"]}
    assert sources[PROMETHEUS_UID]["type"] == "prometheus"
    assert sources[PROMETHEUS_UID]["url"] == "http://prometheus:9090"
    assert sources[API_UID]["type"] == "marcusolsson-json-datasource"
    provider_file = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
    providers = yaml.safe_load(provider_file.read_text())["providers"]
    assert [p["options"]["path"] for p in providers if p["type"] == "file"] == ["/var/lib/grafana/dashboards"]


def test_dashboards_exist_and_every_panel_uses_a_fixed_datasource() -> None:
    assert {path.name for path in DASHBOARDS} >= {"overview.json", "account.json", "pipeline.json"}
    uids = set()
    for path in DASHBOARDS:
        board = dashboard(path)
        assert board["uid"] not in uids, path
        uids.add(board["uid"])
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            where = f"{path.name}: {panel['title']}"
            assert panel["datasource"]["uid"] in {PROMETHEUS_UID, API_UID}, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], where
                if panel["datasource"]["uid"] == PROMETHEUS_UID:
                    assert target["expr"].strip(), where
                else:
                    assert target["urlPath"].startswith("/churnwatch/") and target["fields"], where
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == PROMETHEUS_UID, (path.name, variable["name"])


def test_dashboards_use_only_existing_recording_rules() -> None:
    used = {name for expr in dashboard_exprs() for name in RECORDED_REF.findall(expr)}
    assert used, "the dashboards should read recording rules"
    assert used <= recorded_names(), used - recorded_names()


def test_dashboard_content() -> None:
    overview = json.dumps(dashboard(GRAFANA / "dashboards" / "overview.json"))
    for needle in (
        "churnwatch:accounts_at_risk:sum",
        "churnwatch:revenue_at_risk:sum",
        "churnwatch_alerts_raised_total",
        "churnwatch_top_account_risk",
    ):
        assert needle in overview, needle
    account = dashboard(GRAFANA / "dashboards" / "account.json")
    assert [v["name"] for v in account["templating"]["list"]] == ["account_id"]
    assert all(
        "$account_id" in t["expr"]
        for p in panels(account)
        for t in p["targets"]
        if "churnwatch_top_account_risk" in t["expr"]
    )
    pipeline = json.dumps(dashboard(GRAFANA / "dashboards" / "pipeline.json"))
    for needle in (
        "churnwatch:events_consumed:rate5m",
        "churnwatch:processing_latency_seconds:p99_5m",
        "churnwatch:processing_latency_seconds:p50_5m",
        "churnwatch:consumer_lag_messages:sum",
        "churnwatch:deadletters:rate5m",
        "churnwatch:alert_deliveries:rate5m",
        "churnwatch:alert_delivery_retries:rate5m",
        "churnwatch:sweep_duration_seconds:p99_5m",
        "churnwatch:state_bytes:sum",
        "churnwatch:accounts_tracked:sum",
    ):
        assert needle in pipeline, needle
    feedback = json.dumps(dashboard(GRAFANA / "dashboards" / "feedback.json"))
    for needle in (
        "churnwatch:feedback_precision:ratio30d",
        "churnwatch:feedback_alerts_judged:increase30d",
        "churnwatch:feedback_first_answer_seconds:p50_30d",
        "churnwatch:feedback_false_alarms_by_reason:increase30d",
        "churnwatch:feedback_false_alarm_ratio_by_reason:ratio30d",
        "churnwatch:feedback_alerts_answered:increase30d",
    ):
        assert needle in feedback, needle


# -- docs ----------------------------------------------------------------------------------------------------


def test_observability_doc_covers_every_metric_alert_and_dashboard() -> None:
    text = OBSERVABILITY_MD.read_text()
    for name, kind in exported_names().items():
        if kind != "histogram":
            assert f"| `{name}` | {kind}" in text, name
        elif name.endswith("_bucket"):
            assert f"| `{name.removesuffix('_bucket')}` | histogram" in text, name
    for rule in alert_rules():
        assert f"### {rule['alert']}" in text, rule["alert"]
    for path in DASHBOARDS:
        assert f"`{path.name}`" in text, path.name


@pytest.mark.parametrize("path", [RECORDING, ALERTS, *RULE_TESTS, CONFIG, ALERTMANAGER], ids=lambda p: p.name)
def test_yaml_files_parse(path: Path) -> None:
    assert yaml.safe_load(path.read_text())
