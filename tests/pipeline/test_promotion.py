"""The promotion gate end to end, in its own model store: the first model is promoted, a deliberately
worse run (one candidate trained on a fifth of the data) is refused with the numbers and stays in the
store, serving keeps the promoted model, and --force-promote records its reason. Also the HTML report,
``python -m pipeline runs`` and ``diff``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_pipeline

pytestmark = pytest.mark.e2e
WORSE = ("--candidates", '["gradient_boosting"]', "--test-size", "0.8")


@dataclass
class Store:
    home: Path
    artefacts: Path
    first: subprocess.CompletedProcess[str]
    worse: subprocess.CompletedProcess[str]


def python(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("ADMISSIONS_MODEL_TAG", None)
    command = [sys.executable, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def record(home: Path) -> dict:
    return json.loads((home / "promotions" / "admissions.json").read_text())


def tag_in(output: str) -> str:
    return re.search(r"model:\s+(admissions:\w+)", output).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    home, artefacts = tmp_path_factory.mktemp("gate-home"), tmp_path_factory.mktemp("gate") / "artefacts"
    first = run_pipeline(artefacts, home, task="PromoteModel")
    assert first.returncode == 0, first.stderr[-3000:]
    worse = run_pipeline(artefacts, home, *WORSE, task="PromoteModel")
    return Store(home, artefacts, first, worse)


def test_the_first_model_is_promoted(store: Store) -> None:
    assert record(store.home)["promoted"] == tag_in(store.first.stderr)
    assert "gate:     promoted: the first model of this store" in store.first.stderr


def test_a_worse_run_is_refused_with_its_numbers_and_exit_30(store: Store) -> None:
    assert store.worse.returncode == 30
    first, worse = tag_in(store.first.stderr), tag_in(store.worse.stderr)
    sentence = next(line for line in store.worse.stderr.splitlines() if "was not promoted" in line)
    assert f"{worse} was not promoted (it stays in the store; {first} stays promoted)" in sentence
    assert re.search(r"held_out_rmse 0\.\d{4} vs promoted 0\.\d{4}: worse by 0\.\d{4} \(tolerance 0\.005\)", sentence)
    assert "Traceback" not in store.worse.stderr
    assert "gate:     refused" in store.worse.stderr


def test_the_refused_model_stays_in_the_store_and_serving_keeps_the_promoted_one(store: Store) -> None:
    first, worse = tag_in(store.first.stderr), tag_in(store.worse.stderr)
    latest = python(store.home, "-c", "import bentoml; print(bentoml.models.get('admissions:latest').tag)")
    assert latest.stdout.strip() == worse  # registered, the newest
    assert record(store.home)["promoted"] == first
    # what `make serve` (bentoml serve service.api:AdmissionsAPI) loads when no tag is given
    served = python(store.home, "-c", "from service.models import MODEL_TAG; print(MODEL_TAG)")
    assert served.stdout.strip().splitlines()[-1] == first, served.stderr[-2000:]


def test_the_html_report_is_self_contained(store: Store) -> None:
    reports = sorted((store.artefacts / "ReportRun").glob("*/report.html"))
    assert len(reports) == 2  # the refused run has its report too
    page = reports[0].read_text()
    for section in ("Candidates", "Predicted vs actual", "Residuals against each feature",
                    "Prediction intervals", "coverage by decile", "Global view", "Model card", "Lineage"):  # fmt: skip
        assert section in page, section
    assert page.count('src="data:image/png;base64,') >= 5
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched: opens offline


def test_runs_lists_both_newest_first_and_diff_shows_what_differs(store: Store) -> None:
    first, worse = tag_in(store.first.stderr), tag_in(store.worse.stderr)
    runs = python(store.home, "-m", "pipeline", "runs")
    assert runs.returncode == 0, runs.stderr
    lines = runs.stdout.splitlines()
    assert "test_size" in lines[0] and "candidates" in lines[0]
    assert worse in lines[1] and " no " in lines[1] and first in lines[2] and " yes " in lines[2]
    diff = python(store.home, "-m", "pipeline", "diff", first, worse.split(":")[1])
    assert diff.returncode == 0, diff.stderr
    assert re.search(r"param test_size\s+0\.2\s+0\.8", diff.stdout)
    assert re.search(r"metric held_out_rmse\s+0\.\d{4}\s+0\.\d{4}\s+\+0\.\d{4}", diff.stdout)
    unknown = python(store.home, "-m", "pipeline", "diff", first, "nosuchversion")
    assert unknown.returncode == 2 and "no registered model admissions:nosuchversion" in unknown.stderr


def test_force_promote_promotes_and_records_the_reason(store: Store) -> None:
    forced = run_pipeline(
        store.artefacts, store.home, *WORSE, "--force-promote", "new intake rules", task="PromoteModel"
    )
    assert forced.returncode == 0, forced.stderr[-3000:]
    history = record(store.home)
    assert history["promoted"] == tag_in(store.worse.stderr)
    last = history["history"][-1]
    assert last["forced"] is True and last["reason"] == "new intake rules" and last["passed"] is False
