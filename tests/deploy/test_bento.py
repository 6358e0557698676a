"""BuildBento and Containerize through the real pipeline, and the Bento and topology really serving."""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
import requests

from tests.deploy.test_static import COMPOSE, engine_reachable
from tests.support.applicants import APPLICANT
from tests.support.paths import ROOT
from tests.support.pipeline import PipelineRun, run_pipeline
from tests.support.ports import free_port
from tests.support.processes import running, stop
from tests.support.service import add_user

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bento(pipeline_run: PipelineRun) -> dict:
    """The pipeline run on through BuildBento (everything before it is already done)."""
    result = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="BuildBento")
    assert result.returncode == 0, result.stderr[-3000:]
    manifests = list((pipeline_run.artefacts / "BuildBento").glob("*/manifest.json"))
    assert len(manifests) == 1
    return json.loads(manifests[0].read_text())


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A users file with one user, and a secret made for this run (nothing secret is committed)."""
    folder = tmp_path_factory.mktemp("auth")
    password = secrets.token_urlsafe(16)
    add_user(folder / "users.json", "officer", password)
    return {
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "ADMISSIONS_USERS_FILE": str(folder / "users.json"),
        "ADMISSIONS_JOBS_DB": str(folder / "jobs.sqlite"),
        "password": password,
    }


def server_env(credentials: dict[str, str], home: Path) -> dict[str, str]:
    env = {k: v for k, v in credentials.items() if k != "password"}
    return {**env, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}


def login_and_predict(base: str, password: str) -> dict:
    token = requests.post(f"{base}/login", json={"username": "officer", "password": password}, timeout=10)
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    answer = requests.post(f"{base}/predict", json=APPLICANT, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    batch = requests.post(
        f"{base}/predict_batch", json={"applicants": [APPLICANT, APPLICANT]}, headers=headers, timeout=30
    )
    assert batch.status_code == 200, batch.text
    # /predict_batch runs in the batch service, /predict in the single one: close, not bit for bit
    assert batch.json()["chances"] == pytest.approx([answer.json()["chance"]] * 2, abs=1e-12)
    return answer.json()


def test_the_bento_is_built_with_the_exact_model_and_traceable_labels(bento: dict, pipeline_run: PipelineRun) -> None:
    built = bentoml.get(bento["tag"])
    assert bento["model_tag"] == pipeline_run.model_tag
    assert bento["parameters"]["bentofile"] == "bentofile.yaml"
    assert re.fullmatch(r"[0-9a-f]{64}", bento["parameters"]["build_inputs"])  # a sha256 of what went in
    labels = built.info.labels
    assert labels["model_tag"] == pipeline_run.model_tag.replace(":", "-")
    assert labels["code_version"] == bento["parameters"]["code_version"]
    assert labels["project"] == "graduate-admissions"  # from bentofile.yaml
    assert built.info.args == {"model_tag": pipeline_run.model_tag}
    models = {str(model.tag) for service in built.info.services for model in service.models}
    assert models == {pipeline_run.model_tag}
    # The served image carries the service and the kernel it stands on, and nothing of the pipeline.
    source = Path(built.path) / "src"
    assert {path.relative_to(source).parts[0] for path in source.rglob("*.py")} == {"core", "service"}


def test_bentoml_list_shows_what_the_pipeline_made(bento: dict, pipeline_run: PipelineRun) -> None:
    cli = [sys.executable, "-m", "bentoml"]
    bentos = subprocess.run([*cli, "list", "-o", "json"], capture_output=True, text=True, check=True).stdout
    assert bento["tag"] in {item["tag"] for item in json.loads(bentos)}
    models = subprocess.run([*cli, "models", "list", "-o", "json"], capture_output=True, text=True, check=True).stdout
    assert pipeline_run.model_tag in {item["tag"] for item in json.loads(models)}


def test_building_again_with_nothing_changed_does_nothing(bento: dict, pipeline_run: PipelineRun) -> None:
    result = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="BuildBento")
    assert result.returncode == 0
    assert "ran successfully" not in result.stderr
    assert [str(b.tag) for b in bentoml.list("admissions_api")] == [bento["tag"]]


def test_the_generated_dockerfile_passes_hadolint_and_bakes_in_no_secret(bento: dict) -> None:
    dockerfile = Path(bentoml.get(bento["tag"]).path) / "env" / "docker" / "Dockerfile"
    done = subprocess.run([str(Path(sys.executable).parent / "hadolint"), "--config", str(ROOT / ".hadolint.yaml"),
                           str(dockerfile)], capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = dockerfile.read_text()
    assert re.search(r"^USER bentoml$", text, re.MULTILINE)
    assert "ENV JWT_SECRET_KEY=$JWT_SECRET_KEY" in text  # a name, filled at run time, never a value


def test_containerize_without_an_engine_fails_with_one_clear_sentence(bento: dict, pipeline_run: PipelineRun) -> None:
    if engine_reachable():
        pytest.skip("a container engine is reachable here: this test is about machines without one")
    result = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="Containerize")
    assert result.returncode == 30
    assert "no container engine is reachable here" in result.stderr
    assert f"bentoml containerize {bento['tag']}" in result.stderr
    assert "Traceback" not in result.stderr


def test_bentoml_serve_of_the_bento_serves_its_pinned_model(
    bento: dict, pipeline_run: PipelineRun, credentials: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "bentoml"
    shutil.copytree(pipeline_run.bentoml_home, home)
    # A newer model in the store: the Bento must still serve the model it was built with.
    script = (f"import bentoml; m = bentoml.sklearn.load_model({pipeline_run.model_tag!r}); "
              "bentoml.sklearn.save_model('admissions:newer', m)")  # fmt: skip
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "BENTOML_HOME": str(home)}, check=True)
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", bento["tag"], "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(command, server_env(credentials, home), f"{base}/readyz", tmp_path / "serve.log"):
        answer = login_and_predict(base, credentials["password"])
    assert answer["model_tag"] == pipeline_run.model_tag
    assert 0 <= answer["chance"] <= 1


def test_the_compose_topology_runs_as_local_processes(
    pipeline_run: PipelineRun, credentials: dict[str, str], tmp_path: Path
) -> None:
    """The three services of docker-compose.yml, with its commands and environment, on loopback ports."""
    ports = {name: free_port() for name in ("single", "batch", "api")}
    url_of = {f"http://{name}:3000": f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = server_env(credentials, pipeline_run.bentoml_home)
    services = COMPOSE["services"]
    base = f"http://127.0.0.1:{ports['api']}"
    with (
        running(*_local(services["single"], ports["single"], env, url_of, tmp_path / "single.log")) as single,
        running(*_local(services["batch"], ports["batch"], env, url_of, tmp_path / "batch.log")),
        running(*_local(services["api"], ports["api"], env, url_of, tmp_path / "api.log")),
    ):
        answer = login_and_predict(base, credentials["password"])
        assert answer["model_tag"] == pipeline_run.model_tag
        stop(single)  # the API really calls the separate single-model process: without it /predict fails
        token = requests.post(f"{base}/login", json={"username": "officer", "password": credentials["password"]})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert requests.post(f"{base}/predict", json=APPLICANT, headers=headers, timeout=30).status_code >= 500
        batch = requests.post(f"{base}/predict_batch", json={"applicants": [APPLICANT]}, headers=headers, timeout=30)
        assert batch.status_code == 200


def _local(spec: dict, port: int, env: dict[str, str], url_of: dict[str, str], log: Path) -> tuple:
    """A compose service as a local process: its command with a loopback host and port, its environment
    with service URLs mapped to loopback and container paths replaced by this test's."""
    command = [arg for arg in spec["command"]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    compose_env = {k: _interpolated(str(v)) for k, v in spec.get("environment", {}).items()}
    local_env = {k: url_of.get(v, v) for k, v in compose_env.items() if k.endswith("_URL")}
    command[0] = str(Path(sys.executable).parent / command[0])
    return command, {**env, **local_env}, f"http://127.0.0.1:{port}/readyz", log


def _interpolated(value: str) -> str:
    """``${NAME:-default}`` as compose reads it with none of the variables set: the default. (Taken
    literally, ``ADMISSIONS_JOBS_URL`` once became a jobs file of that name in the checkout.)"""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_serving_a_bento_never_writes_into_it_and_says_where_its_state_is(
    bento: dict, pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    """Issue 9 item 2: without ADMISSIONS_USERS_FILE and ADMISSIONS_JOBS_DB the defaults once resolved
    inside the Bento's folder in the store, and the server created jobs.sqlite there."""
    folder = Path(bentoml.get(bento["tag"]).path)
    before = sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())
    state = tmp_path / "state"
    env = {"JWT_SECRET_KEY": secrets.token_urlsafe(48), "XDG_STATE_HOME": str(state),
           "BENTOML_HOME": str(pipeline_run.bentoml_home)}  # fmt: skip
    for name in ("ADMISSIONS_USERS_FILE", "ADMISSIONS_JOBS_DB", "ADMISSIONS_JOBS_URL"):
        env[name] = ""
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", bento["tag"], "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "serve.log"
    with running(command, env, f"http://127.0.0.1:{port}/readyz", log):
        answer = requests.post(f"http://127.0.0.1:{port}/login", json={"username": "a", "password": "b"}, timeout=30)
        assert answer.status_code == 401
    output = log.read_text()
    assert f"users file {state / 'admissions' / 'users.json'}" in output
    assert f"jobs database {state / 'admissions' / 'jobs.sqlite'}" in output
    assert "does not exist: every login will fail" in output
    assert (state / "admissions" / "jobs.sqlite").is_file()
    after = sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())
    assert after == before
