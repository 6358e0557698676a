"""Shared fixtures: a model registered by the real pipeline into a temporary BENTOML_HOME.

Every test session gets its own BENTOML_HOME (set before BentoML is imported anywhere), so tests
never touch the user's model store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RAW_DATA = ROOT / "data" / "Admission_Predict_Ver1.1.csv"
_SESSION_HOME = tempfile.mkdtemp(prefix="bentoml-home-")
os.environ["BENTOML_HOME"] = _SESSION_HOME
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


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


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """The pipeline run once for the session, on the vendored data, through RegisterModel.

    It registers into the session's BENTOML_HOME, so tests can also load the model in-process.
    """
    artefacts, home = tmp_path_factory.mktemp("pipeline") / "artefacts", Path(_SESSION_HOME)
    result = run_pipeline(artefacts, home)
    assert result.returncode == 0, result.stderr[-4000:]
    return PipelineRun(artefacts, home, registered_tag(home), result)
