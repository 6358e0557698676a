"""Rolling a new champion out to the compose stack, as docs/model-card.md tells an operator to: another
model becomes champion, `make build-docker MODEL_VERSION=champion`, `make run-docker MODEL_VERSION=champion`.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import PipelineRun, run_pipeline
from tests.docker.conftest import run
from tests.docker.stack import Stack
from tests.servers import free_port

pytestmark = pytest.mark.docker


@pytest.fixture
def new_champion(pipeline_run: PipelineRun, image: dict) -> Iterator[str]:
    """A second registered model made champion by hand; the suite's model is champion again afterwards."""
    home = str(pipeline_run.bentoml_home)
    other = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, "--candidates", '["ridge"]',
                         task="RegisterModel")  # fmt: skip
    assert other.returncode == 0, other.stderr[-3000:]
    tag = next(line.split()[-1] for line in other.stderr.splitlines() if line.startswith("  model:"))
    assert tag != pipeline_run.model_tag
    promoted = run([sys.executable, "-m", "pipeline", "promote", tag, "--reason", "rollout test"], BENTOML_HOME=home)
    assert promoted.returncode == 0, promoted.stderr
    try:
        yield tag
    finally:
        back = [sys.executable, "-m", "pipeline", "promote", pipeline_run.model_tag, "--reason", "rollout test done"]
        run(back, BENTOML_HOME=home)


def test_a_new_champion_is_rolled_out_to_the_compose_stack(
    pipeline_run: PipelineRun, new_champion: str, secrets_dir: dict[str, str]
) -> None:
    built = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, "--model-version", "champion",
                         task="Containerize")  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    stack = Stack(
        project=f"admissions-test-rollout-{secrets.token_hex(4)}",
        port=free_port(),
        prometheus_port=free_port(),
        image="",  # chosen by MODEL_VERSION, as an operator does
        env_file=secrets_dir["env_file"],
        users_file=secrets_dir["users_file"],
        password=secrets_dir["password"],
    )
    try:
        started = stack.make("run-docker", MODEL_VERSION="champion", DOCKER_IMAGE="")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"model {new_champion})" in started.stdout
        served = stack.get("/model", stack.login()).json()
        assert served["model_tag"] == new_champion
    finally:
        stack.compose("--profile", "*", "down", "-v", "--remove-orphans", check=False)
