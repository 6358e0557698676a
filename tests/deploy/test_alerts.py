"""The alert rules (deploy/prometheus/alerts.yml) with Prometheus's own tool: valid, and each firing for
its cause and silent without it on synthetic series (deploy/prometheus/alerts.test.yml)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

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
