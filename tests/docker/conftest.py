"""The container suite (`make test-docker`, marker ``docker``): the real engine, the real image, the
compose stack under a project name of its own on a free port.

These tests run only when asked for with ``-m docker``; in ``make test`` they are deselected (not
skipped), so the default suite never needs an engine.

Session fixtures, in order: the pipeline registers a model and Containerize builds (or, with a warm
layer cache, reuses) its image; ``make run-docker`` starts api, single, batch and Prometheus with a JWT
secret and a users file made for this run; the stack is removed with its volumes at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, PipelineRun, run_pipeline
from tests.docker.stack import Stack, docker
from tests.servers import free_port
from tests.support.service import add_user
from tests.support.shared import exclusive, run_folder

PASSWORD_BYTES = 18


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs a Docker engine; runs the image and compose stack (make test-docker)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the container tests unless the marker expression names them (``-m docker``)."""
    if "docker" in (config.getoption("markexpr") or ""):
        return
    chosen = [item for item in items if item.get_closest_marker("docker") is None]
    if len(chosen) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
        items[:] = chosen


@pytest.fixture(scope="session")
def engine() -> str:
    done = docker("info", "--format", "{{.ServerVersion}}", check=False)
    if done.returncode != 0:
        pytest.fail(f"the container tests need a Docker engine and `docker info` failed: {done.stderr.strip()}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def image(engine: str, pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The pipeline on through Containerize: builds the image, or reuses every cached layer. It never
    tags ``admissions_api:latest`` (what a user's `make run-docker` runs): its id before is kept to check.

    Each xdist worker containerizes its own copy of the run (its tests read that copy's records), one
    worker at a time: the first builds, the next finds every layer cached instead of building alongside."""
    latest = docker("image", "inspect", "-f", "{{.Id}}", "admissions_api:latest", check=False).stdout.strip()
    with exclusive(run_folder(tmp_path_factory) / "container-image.lock"):
        result = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="Containerize")
    assert result.returncode == 0, result.stderr[-4000:]
    records = list((pipeline_run.artefacts / "Containerize").glob("*/image.json"))
    assert len(records) == 1
    return {**json.loads(records[0].read_text()), "stderr": result.stderr, "latest_before": latest}


@pytest.fixture(scope="session")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A JWT secret, a users file and an env file made for this run; nothing secret is committed."""
    folder = tmp_path_factory.mktemp("stack-secrets")
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    add_user(folder / "users.json", "officer", password)
    env_file = folder / "stack.env"
    env_file.write_text(f"JWT_SECRET_KEY={secrets.token_urlsafe(48)}\n")
    return {"env_file": str(env_file), "users_file": str(folder / "users.json"), "password": password}


@pytest.fixture(scope="session")
def stack(image: dict, secrets_dir: dict[str, str]) -> Iterator[Stack]:
    """``make run-docker`` with the monitoring profile, as a user runs it; ``down -v`` at the end."""
    stack = Stack(
        project=f"admissions-test-{secrets.token_hex(4)}",
        port=free_port(),
        prometheus_port=free_port(),
        image=image["image"],
        env_file=secrets_dir["env_file"],
        users_file=secrets_dir["users_file"],
        password=secrets_dir["password"],
    )
    try:
        started = stack.make("run-docker", MONITORING="1")
        assert started.returncode == 0, started.stdout + started.stderr
        stack.started_output = started.stdout
        yield stack
    finally:
        stack.compose("--profile", "*", "down", "-v", "--remove-orphans", check=False)


@pytest.fixture(scope="session")
def in_process_model(pipeline_run: PipelineRun):  # type: ignore[no-untyped-def]
    """The registered model itself, loaded in this process: the reference for every prediction."""
    import bentoml

    return bentoml.sklearn.load_model(pipeline_run.model_tag)


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, **env})


def data_sha256() -> str:
    from pipeline.provenance import sha256_file
    from tests.conftest import RAW_DATA

    return sha256_file(Path(RAW_DATA))
