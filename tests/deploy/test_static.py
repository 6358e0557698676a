"""docker-compose.yml, the workflows and bentofile.yaml, checked without a container engine."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
MODEL_SERVICES = {"single": "service.models:SingleModel", "batch": "service.models:BatchModel"}


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_compose_file_follows_the_compose_specification() -> None:
    done = run_tool(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_follow_the_schema_and_pass_actionlint() -> None:
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    schema = run_tool(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    lint = run_tool(str(BIN / "actionlint"), *workflows)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_each_service_runs_only_its_own_bentoml_service() -> None:
    services = COMPOSE["services"]
    for name, target in {**MODEL_SERVICES, "api": "service.api:AdmissionsAPI"}.items():
        assert services[name]["command"][:3] == ["bentoml", "serve", target]
    assert services["api"]["environment"]["SINGLE_MODEL_URL"] == "http://single:3000"
    assert services["api"]["environment"]["BATCH_MODEL_URL"] == "http://batch:3000"


def test_only_the_api_publishes_a_port_and_every_service_is_hardened() -> None:
    services = COMPOSE["services"]
    published = {
        name for name, spec in services.items() if spec.get("ports") and "monitoring" not in spec.get("profiles", [])
    }
    assert published == {"api"}
    assert services["api"]["ports"] == ["${API_PORT:-3000}:3000"]
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]  # optional profile, loopback only
    for name in ("api", *MODEL_SERVICES):
        spec = services[name]
        assert spec["user"] != "0:0" and not spec["user"].startswith("0")
        assert "/readyz" in " ".join(spec["healthcheck"]["test"])
        assert spec["restart"] == "unless-stopped"
        assert spec["deploy"]["resources"]["limits"]["memory"]
        assert spec["env_file"] == ".env"


def test_batch_jobs_live_on_a_named_volume() -> None:
    api = COMPOSE["services"]["api"]
    assert "jobs:/var/lib/admissions" in api["volumes"]
    assert api["environment"]["ADMISSIONS_JOBS_DB"].startswith("/var/lib/admissions/")
    assert "jobs" in COMPOSE["volumes"]


def test_prometheus_scrapes_every_service() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == ["api:3000", "batch:3000", "single:3000"]


def test_secrets_are_declared_by_name_only() -> None:
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    envs = {entry["name"]: entry for entry in bentofile["envs"]}
    assert {"JWT_SECRET_KEY", "ADMISSIONS_USERS_FILE"} <= envs.keys()
    assert all("value" not in entry for entry in envs.values())
    example = (ROOT / ".env.example").read_text()
    assert "JWT_SECRET_KEY=\n" in example  # the example carries no secret


def test_the_bento_pins_the_projects_own_locked_requirements() -> None:
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    locked = (ROOT / bentofile["python"]["requirements_txt"]).read_text().splitlines()
    pins = [line for line in locked if line and not line.startswith("#")]
    assert pins
    assert all("==" in line for line in pins)
    dev = set((ROOT / "requirements" / "dev.txt").read_text().splitlines())
    assert set(pins) <= dev, set(pins) - dev  # the same versions as the project's environment


@pytest.mark.parametrize("target", ["run-docker", "stop-docker"])
def test_docker_targets_say_clearly_when_no_engine_is_reachable(target: str) -> None:
    if engine_reachable():
        pytest.skip("a container engine is reachable here: this test is about machines without one")
    done = subprocess.run(["make", "-s", target], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert "No .env" in done.stdout or "container engine" in done.stdout


def engine_reachable() -> bool:
    return run_tool("sh", "-c", "docker info >/dev/null 2>&1").returncode == 0
