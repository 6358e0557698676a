"""The alert rules (deploy/prometheus/alerts.yml) with Prometheus's own tool: valid, and each firing for
its cause and silent without it on synthetic series (deploy/prometheus/alerts.test.yml)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT

RULES = ROOT / "deploy" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("ADMISSIONS_REQUIRE_PROMTOOL") == "1":
            pytest.fail("promtool is required here (Debian: apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False)


def test_the_alert_rules_are_valid() -> None:
    done = run_promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_for_its_cause_and_not_without_it() -> None:
    done = run_promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_has_a_severity_and_a_runbook_section() -> None:
    rules = [rule for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"] for rule in group["rules"]]
    tested = {
        case["alertname"]
        for test in yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    runbooks = (ROOT / "docs" / "monitoring.md").read_text().lower()
    for rule in rules:
        assert rule["alert"] in tested, f"{rule['alert']} has no promtool test"
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f"### {anchor}" in runbooks, f"docs/monitoring.md has no runbook section for {rule['alert']}"


def test_the_dashboard_queries_are_valid_promql_over_metrics_the_service_exports(tmp_path: Path) -> None:
    """Each panel's query checked by Prometheus's own parser (as recording rules), and every admissions_*
    metric a panel or an alert reads is one the service defines."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "admissions.json").read_text())
    queries = [t["expr"].replace("$__rate_interval", "5m") for panel in dashboard["panels"] for t in panel["targets"]]
    rules = {
        "groups": [{"name": "panels", "rules": [{"record": f"panel:{i}", "expr": q} for i, q in enumerate(queries)]}]
    }
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "panels.yml")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    defined = set(
        re.findall(r'name="(admissions_[a-z_]+)"', "".join(p.read_text() for p in (ROOT / "service").rglob("*.py")))
    )
    read = " ".join(queries) + (RULES / "alerts.yml").read_text()
    used = {re.sub(r"_total$", "", name) for name in re.findall(r"\b(admissions_[a-z_]+)", read)}
    assert used <= defined, f"read but never exported: {sorted(used - defined)}"
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("drift", "realised rmse", "coverage"):
        assert subject in titles
