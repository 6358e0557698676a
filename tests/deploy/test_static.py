"""docker-compose.yml, the workflows, bentofile.yaml, the Dockerfile template, the monitoring files and
the container tooling's error paths, checked without a container engine (a bogus DOCKER_HOST stands
in for "no engine", so these run everywhere)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import container
from pipeline.errors import PackagingError
from tests.support.paths import ROOT

BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
MODEL_SERVICES = {"single": "service.models:SingleModel", "batch": "service.models:BatchModel"}
APP_SERVICES = ("api", *MODEL_SERVICES)
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


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
    published = {name for name, spec in services.items() if spec.get("ports") and not spec.get("profiles")}
    assert published == {"api"}
    assert services["api"]["ports"] == ["${API_BIND:-127.0.0.1}:${API_PORT:-3000}:3000"]
    for name in ("prometheus", "grafana"):  # optional profiles, loopback only
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"])
    for name, spec in services.items():
        uid = spec["user"].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, name  # no container runs as root, not even briefly
        assert spec["deploy"]["resources"]["limits"]["memory"] and spec["deploy"]["resources"]["limits"]["cpus"]
        assert "no-new-privileges:true" in spec["security_opt"]
    for name in APP_SERVICES:
        spec = services[name]
        assert "/readyz" in " ".join(spec["healthcheck"]["test"])
        assert spec["restart"] == "unless-stopped"
        assert spec["env_file"] == "${ADMISSIONS_ENV_FILE:-.env}"
        assert spec["pull_policy"] == "never"  # a local build, never fetched
        assert spec["cap_drop"] == ["ALL"]


def test_the_model_services_are_only_on_the_internal_network() -> None:
    services = COMPOSE["services"]
    assert COMPOSE["networks"]["models"]["internal"] is True
    for name in MODEL_SERVICES:
        assert services[name]["networks"] == ["models"]
    assert set(services["api"]["networks"]) == {"models", "public", "jobs-db"}


def test_the_postgres_profile_is_optional_unpublished_and_shares_a_network_with_the_api_only() -> None:
    services = COMPOSE["services"]
    postgres, api = services["postgres"], services["api"]
    assert postgres["profiles"] == ["postgres"] and "ports" not in postgres
    assert postgres["networks"] == ["jobs-db"] and COMPOSE["networks"]["jobs-db"]["internal"] is True
    assert {name for name, spec in services.items() if "jobs-db" in spec.get("networks", [])} == {"api", "postgres"}
    assert postgres["pull_policy"] == "never" and postgres["cap_drop"] == ["ALL"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "postgres:/var/lib/postgresql/data" in [v.split("  ")[0] for v in postgres["volumes"]]
    assert "postgres" in COMPOSE["volumes"]
    # The password: a secret from make run-docker's environment (the env file), never a value here.
    assert [s["source"] for s in postgres["secrets"]] == ["postgres_password"]
    assert COMPOSE["secrets"]["postgres_password"] == {"environment": "ADMISSIONS_POSTGRES_PASSWORD"}
    assert "ADMISSIONS_POSTGRES_PASSWORD=\n" in (ROOT / ".env.example").read_text()
    # Without the profile the API keeps its SQLite file: the URL is empty and the dependency optional.
    assert api["environment"]["ADMISSIONS_JOBS_URL"] == "${ADMISSIONS_JOBS_URL:-}"
    assert api["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}


def test_batch_jobs_live_on_a_named_volume_and_users_come_in_as_a_secret() -> None:
    api = COMPOSE["services"]["api"]
    assert "jobs:/var/lib/admissions" in [v.split("  ")[0] for v in api["volumes"]]
    assert api["environment"]["ADMISSIONS_JOBS_DB"].startswith("/var/lib/admissions/")
    assert "jobs" in COMPOSE["volumes"]
    assert api["environment"]["ADMISSIONS_USERS_FILE"] == "/run/secrets/users.json"
    assert COMPOSE["secrets"]["users"] == {"environment": "ADMISSIONS_USERS_JSON"}


def test_prometheus_scrapes_every_service() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == ["api:3000", "batch:3000", "single:3000"]
    mounted = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounted
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounted  # rule_files: alerts.yml


def test_the_grafana_dashboard_is_valid_json_and_provisioned() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "admissions.json").read_text())
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("request rate", "latency", "errors", "batch sizes", "model tag"):
        assert subject in titles
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert all(e.count("(") == e.count(")") and e.count("{") == e.count("}") for e in expressions)
    assert {"bentoml_service_request_total", "admissions_predictions_total"} <= {
        name for e in expressions for name in re.findall(r"[a-z_]+_total", e)
    }
    source = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    assert all(p["datasource"]["uid"] == source["datasources"][0]["uid"] for p in dashboard["panels"])
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/admissions.yml").read_text())
    mounts = COMPOSE["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


def test_the_dockerfiles_pass_hadolint() -> None:
    done = run_tool(str(BIN / "hadolint"), "deploy/prometheus/Dockerfile", "deploy/postgres/Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_template_builds_without_a_registry_or_a_compiler() -> None:
    template = (ROOT / "deploy" / "docker" / "Dockerfile.j2").read_text()
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert bentofile["docker"]["dockerfile_template"] == "deploy/docker/Dockerfile.j2"
    assert not re.search(r"^# *syntax", template, re.MULTILINE)  # BuildKit would fetch a frontend image
    assert "--only-binary=:all:" in template  # wheels only: no compiler needed, none installed
    assert not re.search(r"build-essential|\bgcc\b|\bgit\b", template)
    assert "HEALTHCHECK" in template and re.search(r"^USER \{\{ user \}\}$", template, re.MULTILINE)


def test_base_images_are_read_from_a_multi_stage_dockerfile() -> None:
    dockerfile = "FROM python:3.11-slim AS runtime\nRUN true\nFROM scratch\nCOPY --from=runtime / /\nFROM runtime\n"
    assert container.base_images(dockerfile) == ["python:3.11-slim"]


def test_the_failing_build_step_is_named_from_either_builder(tmp_path: Path) -> None:
    classic = tmp_path / "classic.log"
    classic.write_text("Step 5/9 : COPY a b\n ---> 1\nStep 6/9 : RUN pip install x\nERROR: no x\n")
    assert container.failed_step(classic) == " at step `RUN pip install x`"
    buildkit = tmp_path / "buildkit.log"
    buildkit.write_text("#7 [runtime 3/6] RUN true\n------\n > [runtime 4/6] RUN pip install x:\n------\n")
    assert container.failed_step(buildkit) == " at step `RUN pip install x`"


def test_without_an_engine_containerize_fails_with_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE["DOCKER_HOST"])
    with pytest.raises(PackagingError) as caught:
        container.engine_version("admissions_api:abc")
    message = str(caught.value)
    assert message.startswith("no container engine is reachable here")
    assert "bentoml containerize admissions_api:abc" in message and "\n" not in message


def test_the_build_says_what_it_does_and_where_its_log_is_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    said_before: list[str] = []

    def build_command(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        said_before.extend(record.getMessage() for record in caplog.records)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(container.subprocess, "run", build_command)
    monkeypatch.setattr(container, "docker", lambda *args, **_: subprocess.CompletedProcess(args, 0, "", ""))
    log = tmp_path / "logs" / "admissions_api-abc.log"
    log.parent.mkdir()
    with caplog.at_level("INFO", logger="pipeline.container"):
        container.build("admissions_api:abc", ["admissions_api:abc"], {}, log, buildkit=True)
    assert len(said_before) == 1, said_before  # one line, before the silent build
    assert "building the image admissions_api:abc" in said_before[0] and "a minute or two" in said_before[0]
    assert f"tail -f {log}" in said_before[0]


def test_docker_buildkit_0_selects_the_classic_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    assert container.buildkit_usable() is False


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
    env = {**os.environ, **NO_ENGINE}
    done = subprocess.run(["make", "-s", target], cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines()[0] == (
        "No container engine is reachable (docker info failed); run this on a machine with Docker."
    )


def test_the_default_project_name_is_this_checkouts_own() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COMPOSE_PROJECT_NAME"}
    name = subprocess.run(["bash", "deploy/stack.sh", "name"], cwd=ROOT, capture_output=True, text=True, env=env,
                          check=False)  # fmt: skip
    assert re.fullmatch(r"admissions-[a-z0-9_-]+-[0-9a-f]{8}", name.stdout.strip()), name.stdout
    chosen = subprocess.run(["bash", "deploy/stack.sh", "name"], cwd=ROOT, capture_output=True, text=True,
                            env={**env, "COMPOSE_PROJECT_NAME": "mine"}, check=False)  # fmt: skip
    assert chosen.stdout.strip() == "mine"


def engine_reachable() -> bool:
    return run_tool("sh", "-c", "docker info >/dev/null 2>&1").returncode == 0


def test_make_passes_bento_tag_and_model_version_to_the_pipeline() -> None:
    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    containerize = dry_run("build-docker", "BENTO_TAG=abc")
    assert "Containerize" in containerize and "--bento abc" in containerize
    assert "--model-version def" in dry_run("build-docker", "MODEL_VERSION=def")
    assert "--model-version def" in dry_run("build-bento", "MODEL_VERSION=def")
    assert "--bento" not in dry_run("build-docker") and "--model-version" not in dry_run("build-bento")


def test_make_passes_monitoring_and_postgres_to_the_stack_script() -> None:
    for target in ("run-docker", "stop-docker"):
        command = subprocess.run(["make", "-n", target, "MONITORING=1", "POSTGRES=1"], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
        assert 'MONITORING="1"' in command and 'POSTGRES="1"' in command and "bash deploy/stack.sh" in command
