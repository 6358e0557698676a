"""The image: what is in it, what it says about itself, that it starts offline, and the build's errors."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import container
from pipeline.errors import PackagingError
from tests.conftest import ROOT, PipelineRun, run_pipeline
from tests.docker.conftest import data_sha256, run
from tests.docker.stack import LONG_WAIT_S, POLL_S, docker

pytestmark = pytest.mark.docker
MAX_IMAGE_BYTES = 450 * 1000**2  # the 450 MB, as `docker images` counts them
LABEL = "org.graduate-admissions"


def inspect(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]


def test_the_build_says_which_builder_it_used(image: dict) -> None:
    has_buildx = docker("buildx", "version", check=False).returncode == 0
    notice = "no docker buildx plugin for BuildKit here: building with the classic builder instead"
    assert image["builder"] in ("classic", "buildkit")
    assert Path(image["build_log"]).is_file()
    if image["builder"] == "classic" and not has_buildx:
        assert notice in image["stderr"]  # one line saying so, not BentoML's traceback
    assert "Traceback" not in image["stderr"]


def test_the_image_is_labelled_with_its_bento_model_data_and_commit(image: dict, pipeline_run: PipelineRun) -> None:
    labels = inspect(image["image"])["Config"]["Labels"]
    assert labels[f"{LABEL}.bento"] == image["bento"] == image["image"]
    assert labels[f"{LABEL}.model-tag"] == pipeline_run.model_tag
    assert labels[f"{LABEL}.data-sha256"] == data_sha256()
    commit = labels["org.opencontainers.image.revision"]  # the checkout's commit when the Bento was built
    assert run(["git", "cat-file", "-e", f"{commit}^{{commit}}"]).returncode == 0, commit
    assert labels["org.opencontainers.image.version"] == image["bento"].split(":")[1]
    assert image["also_tagged"] is None and "--tag-latest false" in image["not_tagged_latest"]
    # The suite never moves the tag a user's `make run-docker` runs (it may not exist at all here).
    after = docker("image", "inspect", "-f", "{{.Id}}", "admissions_api:latest", check=False).stdout.strip()
    assert after == image["latest_before"]


def test_lineage_of_an_image_goes_through_its_bento_and_model_to_the_raw_file(
    image: dict, pipeline_run: PipelineRun
) -> None:
    image_id = inspect(image["image"])["Id"]  # its name is also its Bento's tag: the id is the image alone
    done = run([sys.executable, "-m", "pipeline", "lineage", image_id], BENTOML_HOME=str(pipeline_run.bentoml_home))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"image {image_id} (git commit ") and lines[0].endswith(" holds")
    assert lines[1].startswith(f"Bento {image['bento']} ") and f"model {pipeline_run.model_tag}" in done.stdout
    assert f"sha256 {data_sha256()}" in done.stdout


def test_the_image_is_small_non_root_with_a_healthcheck(image: dict) -> None:
    config = inspect(image["image"])
    assert config["Size"] <= MAX_IMAGE_BYTES, f"{config['Size'] / 1e6:.0f} MB"
    assert config["Config"]["User"] == "bentoml"
    assert "/readyz" in " ".join(config["Config"]["Healthcheck"]["Test"])
    probe = "id -u; for tool in gcc cc g++ make git pip pip3; do command -v $tool || true; done"
    found = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image["image"], "-c", probe).stdout.split()
    assert found[0] == "1034" and found[1:] == [], found  # non-root; no compiler, git or pip on PATH


def test_the_image_starts_and_serves_without_network(image: dict) -> None:
    """No network at all: nothing may be fetched at start (models, packages, telemetry)."""
    name = f"admissions-offline-{secrets.token_hex(4)}"
    docker("run", "-d", "--name", name, "--network", "none", "-w", "/home/bentoml/bento/src", image["image"],
           "bentoml", "serve", "service.models:SingleModel", "--host", "127.0.0.1", "--port", "3000")  # fmt: skip
    try:
        status = wait_for_health(name)
        assert status == "healthy", docker("logs", name, check=False).stdout[-3000:]
        predict = (
            "import json, urllib.request; r = urllib.request.Request('http://127.0.0.1:3000/predict', "
            "data=json.dumps({'features': [320, 110, 4, 4.5, 4.0, 9.1, 1]}).encode(), "
            "headers={'Content-Type': 'application/json'}); print(json.load(urllib.request.urlopen(r))['chance'])"
        )
        assert 0 <= float(docker("exec", name, "python", "-c", predict).stdout) <= 1
    finally:
        docker("rm", "-f", name, check=False)


def wait_for_health(name: str) -> str:
    import time

    deadline = time.monotonic() + LONG_WAIT_S
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
        if status in ("healthy", "unhealthy"):
            return status
        time.sleep(POLL_S)
    return status


def test_a_missing_base_image_is_one_sentence_saying_how_to_get_it(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    with pytest.raises(PackagingError) as caught:
        container.ensure_image("admissions-test-missing-base:none", log)
    message = str(caught.value)
    assert message.startswith("the base image admissions-test-missing-base:none is not in the Docker engine")
    assert "docker pull admissions-test-missing-base:none" in message and str(log) in message
    assert "\n" not in message


def test_a_failed_build_step_names_the_step_and_the_full_log(tmp_path: Path, pipeline_run: PipelineRun) -> None:
    """A real Bento whose Dockerfile template fails on purpose, built by the real engine. The template
    lies in the build context (BentoML 1.4.40 refuses a template outside it), in the ignored build/."""
    version = f"failing{secrets.token_hex(4)}"
    template = ROOT / "build" / f"{version}.j2"
    template.parent.mkdir(exist_ok=True)
    template.write_text("FROM {{ __base_image__ }}\nRUN echo failing-on-purpose && false\n")
    bentofile = tmp_path / "bentofile.yaml"
    relative = template.relative_to(ROOT).as_posix()
    bentofile.write_text((ROOT / "bentofile.yaml").read_text().replace("deploy/docker/Dockerfile.j2", relative))
    tag = f"admissions_api:{version}"
    build = [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile), "--name", "admissions_api",
             "--version", version, "--arg", f"model_tag={pipeline_run.model_tag}", str(ROOT)]  # fmt: skip
    done = subprocess.run(build, cwd=ROOT, capture_output=True, text=True, check=False)
    template.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    log = tmp_path / "build.log"
    try:
        with pytest.raises(PackagingError) as caught:
            container.build(tag, [tag], {}, log, container.buildkit_usable())
    finally:
        run([sys.executable, "-m", "bentoml", "delete", "-y", tag])
    message = str(caught.value)
    assert message.startswith(f"the image build of {tag} failed at step `RUN echo failing-on-purpose && false`")
    assert message.endswith(f"full build log: {log}") and "failing-on-purpose" in log.read_text()
    left = docker("ps", "-a", "--no-trunc", "--filter", "status=exited", "--format", "{{.Command}}").stdout
    assert "failing-on-purpose" not in left  # no container of the failed step is left behind


def test_unknown_tags_are_one_line_errors_naming_what_exists(pipeline_run: PipelineRun, image: dict) -> None:
    bento = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, "--bento", "nosuchbento",
                         task="Containerize")  # fmt: skip
    assert bento.returncode != 0 and "Traceback" not in bento.stderr
    assert "no Bento admissions_api:nosuchbento in the store" in bento.stderr and image["bento"] in bento.stderr
    model = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, "--model-version", "nosuchmodel",
                         task="BuildBento")  # fmt: skip
    assert model.returncode != 0 and "Traceback" not in model.stderr
    assert "no registered model admissions:nosuchmodel" in model.stderr and pipeline_run.model_tag in model.stderr


def test_bento_tag_containerizes_that_bento(pipeline_run: PipelineRun, image: dict) -> None:
    """`BENTO_TAG=<tag> make build-docker`: the same Bento again, every layer from the cache."""
    done = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, "--bento", image["bento"],
                        task="Containerize")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (pipeline_run.artefacts / "Containerize").glob("*/image.json")]
    assert [r["image"] for r in records if r["image"] == image["bento"]] == [image["bento"]] * 2


def test_run_docker_never_pulls_a_missing_image(tmp_path: Path) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"JWT_SECRET_KEY={secrets.token_urlsafe(48)}\n")
    users = tmp_path / "users.json"
    users.write_text('{"users": {}}')
    common = {"ADMISSIONS_ENV_FILE": str(env_file), "ADMISSIONS_USERS_HOST_FILE": str(users),
              "COMPOSE_PROJECT_NAME": f"admissions-test-{secrets.token_hex(4)}"}  # fmt: skip
    missing = run(["make", "-s", "run-docker"], DOCKER_IMAGE="admissions-test-missing:none", **common)
    assert missing.returncode != 0
    assert missing.stderr.splitlines()[0] == (
        "The image admissions-test-missing:none is not in the Docker engine (it is never pulled): "
        "run make build-docker first."
    )
    other_model = run(["make", "-s", "run-docker"], MODEL_VERSION="nosuchmodel", **common)
    assert other_model.returncode != 0
    first = other_model.stderr.splitlines()[0]
    assert first.startswith("No image serves model admissions:nosuchmodel (images exist for: ")
    assert first.endswith("run MODEL_VERSION=nosuchmodel make build-docker first.")


def test_model_version_builds_a_bento_of_that_model(pipeline_run: PipelineRun) -> None:
    """`MODEL_VERSION=<tag> make build-bento`: nothing upstream runs, the Bento pins that model."""
    import bentoml

    version = pipeline_run.model_tag.split(":")[1]
    done = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, "--model-version", version,
                        task="BuildBento")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RegisterModel" not in done.stderr.split("Execution Summary")[-1]  # only BuildBento was scheduled
    pinned = [b for b in bentoml.list("admissions_api") if b.info.args == {"model_tag": pipeline_run.model_tag}]
    assert pinned, "no Bento pins the given model"


def test_without_an_engine_make_build_docker_is_one_sentence(pipeline_run: PipelineRun, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    done = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="Containerize")
    assert done.returncode == 30, done.stderr[-3000:]
    assert "PackagingError: no container engine is reachable here" in done.stderr
    assert "Traceback" not in done.stderr
