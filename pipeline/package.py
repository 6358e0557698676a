"""BuildBento and Containerize: the registered model, served by the service, as a Bento and an image."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import bentoml
import luigi
from luigi.util import inherits

from pipeline.errors import PackagingError
from pipeline.provenance import PROJECT_ROOT, sha256_file, write_json
from pipeline.register import RegisterModel
from pipeline.stores import StoreTarget
from pipeline.task import PipelineTask, StoreTask

BENTO_NAME = "admissions_api"
# What goes into the Bento besides the model: a change here must give a new Bento.
_BUILD_INPUTS = ("bentofile.yaml", "requirements/service.txt", "service/*.py")
IMAGE_FILE = "image.json"
_TAIL = 1500  # characters of a failing tool's output worth showing


def build_inputs_sha256(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256()
    for pattern in _BUILD_INPUTS:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def bentoml_command(*args: str) -> list[str]:
    """``bentoml`` of this environment (not whatever is first on PATH)."""
    return [sys.executable, "-m", "bentoml", *args]


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-_TAIL:]
        raise PackagingError(f"{what} failed (exit {done.returncode}): {output}")
    return done.stdout


def build_bento(tag: str, bentofile: str, model_tag: str, labels: dict[str, str]) -> None:
    """``bentoml build`` with the model pinned by its exact tag (a Bento argument the service reads)."""
    name, version = tag.split(":")
    command = bentoml_command("build", "-f", bentofile, "--name", name, "--version", version, "-o", "tag")
    command += ["--arg", f"model_tag={model_tag}"]
    for key, value in sorted(labels.items()):
        command += ["--label", f"{key}={value}"]
    _run([*command, str(PROJECT_ROOT)], f"bentoml build of {tag}")


def container_engine_version(bento_tag: str) -> str:
    """The Docker engine's version, or a PackagingError saying no engine is reachable."""
    try:
        command = ["docker", "info", "--format", "{{.ServerVersion}}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"`docker info` could not run: {exc}"
    else:
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
        reason = (done.stderr.strip().splitlines() or ["`docker info` failed"])[-1]
    raise PackagingError(
        f"no container engine is reachable here ({reason}); run `make build-docker` on a machine with Docker, "
        f"or copy the Bento there (`bentoml export {bento_tag} bento.bento`, then `bentoml import bento.bento`) "
        f"and run `bentoml containerize {bento_tag}`"
    )


@inherits(RegisterModel)
class BuildBento(StoreTask):
    """The Bento of ``bentofile.yaml`` carrying the registered model, in the Bento store."""

    bentofile = luigi.Parameter(default="bentofile.yaml", description="the Bento's build file")
    build_inputs = luigi.Parameter(
        default="", description="sha256 of bentofile, service code and its pins; computed when empty"
    )

    @classmethod
    def fill_in(cls, values: dict[str, Any]) -> None:
        values["build_inputs"] = values["build_inputs"] or build_inputs_sha256()

    def requires(self) -> RegisterModel:
        return self.clone(RegisterModel)

    @property
    def bento_tag(self) -> str:
        return f"{BENTO_NAME}:{hashlib.sha256(self.task_id.encode()).hexdigest()[:16]}"

    def output(self) -> StoreTarget:  # type: ignore[override]
        return StoreTarget(self.bento_tag, bentoml.get)

    def publish(self, manifest: dict[str, Any]) -> None:
        model_tag = self.requires().model_tag
        labels = {
            "model_tag": model_tag.replace(":", "-"),  # label values allow no colon
            "data_sha256": self.data_sha256[:12],
            "code_version": self.code_version,
            "build_inputs": self.build_inputs[:12],
            "pipeline_task": hashlib.sha256(self.task_id.encode()).hexdigest()[:16],
        }
        manifest.update(model_tag=model_tag, bento_labels=labels)
        build_bento(self.bento_tag, self.bentofile, model_tag, labels)


@inherits(BuildBento)
class Containerize(PipelineTask):
    """``bentoml containerize`` of the Bento into an image tagged like the Bento; image.json names it."""

    @classmethod
    def fill_in(cls, values: dict[str, Any]) -> None:
        BuildBento.fill_in(values)

    def requires(self) -> BuildBento:
        return self.clone(BuildBento)

    def produce(self, folder: Path) -> dict[str, Any]:
        bento_tag = self.requires().bento_tag
        engine = container_engine_version(bento_tag)
        latest = f"{BENTO_NAME}:latest"  # what docker-compose.yml runs by default
        command = bentoml_command("containerize", bento_tag, "--image-tag", bento_tag, "--image-tag", latest)
        _run(command, f"bentoml containerize {bento_tag}")
        image = {"image": bento_tag, "also_tagged": latest, "bento": bento_tag, "engine": f"docker {engine}"}
        write_json(folder / IMAGE_FILE, image)
        return image
