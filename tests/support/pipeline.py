"""``python -m pipeline run`` as a user runs it, and the one pipeline run the whole suite starts from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import RAW_DATA, ROOT
from tests.support.shared import once


@dataclass(frozen=True)
class PipelineRun:
    """Where a pipeline run put its outputs, and what it registered."""

    artefacts: Path
    bentoml_home: Path
    model_tag: str
    result: subprocess.CompletedProcess[str]


def run_pipeline(
    artefacts: Path,
    bentoml_home: Path,
    *args: str,
    task: str = "RegisterModel",
    raw_data: Path = RAW_DATA,
    scheduler: tuple[str, ...] = ("--local-scheduler",),
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline run`` in a subprocess, as a user runs it (with fewer CV repeats).

    ``scheduler`` picks the scheduler: e.g. ``("--scheduler-host", "127.0.0.1", "--scheduler-port", "8082")``.
    """
    command = [
        sys.executable, "-m", "pipeline", "run", task,
        "--raw-data", str(raw_data), "--artefacts-dir", str(artefacts),
        *scheduler, *args,
    ]  # fmt: skip
    if task not in ("PrepareData", "TrainModel"):
        command += ["--cv-repeats", "1"]  # faster; the pipeline's default is 2
    if task == "Containerize":
        command += ["--tag-latest", "false"]  # a test never moves the image tag a user runs
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def registered_tag(bentoml_home: Path) -> str:
    command = [sys.executable, "-c", "import bentoml; print(bentoml.models.get('admissions:latest').tag)"]
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home)}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.strip()


def _run_once(folder: Path) -> None:
    result = run_pipeline(folder / "artefacts", folder / "bentoml")
    assert result.returncode == 0, result.stderr[-4000:]
    record = {"args": result.args, "returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
    (folder / "run.json").write_text(json.dumps({**record, "model_tag": registered_tag(folder / "bentoml")}))


def session_run(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> PipelineRun:
    """The pipeline on the vendored data through RegisterModel, run once for the whole test run.

    Each session (each xdist worker) gets copies of its own: the artefacts in a temporary folder, the
    model store in ``bentoml_home``. Task ids do not depend on the artefacts folder, so a copy is as
    complete as the original, and a test that changes its copy changes nobody else's.
    """
    folder = once(tmp_path_factory, "pipeline-run", _run_once)
    record = json.loads((folder / "run.json").read_text())
    artefacts = tmp_path_factory.mktemp("pipeline") / "artefacts"
    shutil.copytree(folder / "artefacts", artefacts)
    shutil.copytree(folder / "bentoml", bentoml_home, dirs_exist_ok=True)
    result = subprocess.CompletedProcess(record["args"], record["returncode"], record["stdout"], record["stderr"])
    return PipelineRun(artefacts, bentoml_home, record["model_tag"], result)
