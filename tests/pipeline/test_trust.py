"""What the registered model carries for trust: calibrated intervals with measured coverage, the
numbers for explanations, the global view and the model card (session run on the vendored data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.pipeline import PipelineRun

# Stated tolerances: CV coverage pools 800 out-of-fold predictions (binomial sd ~1 point at 90%);
# the held-out split has 80 rows (sd ~3.4 points), so it gets about three standard deviations.
CV_TOLERANCE, HELD_OUT_TOLERANCE = 0.03, 0.10


def upstream(run: PipelineRun, family: str) -> Path:
    """The folder of ``family`` that made the session's model (other tests may add more runs)."""
    lineage = json.loads(stored(run, "print(open(m.path_of('lineage.json')).read())"))["lineage"]
    task_id = next(m["task_id"] for m in lineage if m["task_family"] == family)
    return run.artefacts / family / task_id


def stored(run: PipelineRun, code: str) -> str:
    env = {**os.environ, "BENTOML_HOME": str(run.bentoml_home)}
    command = [sys.executable, "-c", f"import bentoml, json; m = bentoml.models.get({run.model_tag!r}); {code}"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.e2e
def test_interval_coverage_is_near_nominal_on_held_out_data_and_by_cv(pipeline_run: PipelineRun) -> None:
    intervals = json.loads((upstream(pipeline_run, "CalibrateIntervals") / "intervals.json").read_text())
    assert set(intervals["half_widths"]) == {"0.8", "0.9", "0.95"} and intervals["default_level"] == 0.9
    widths = [intervals["half_widths"][level] for level in ("0.8", "0.9", "0.95")]
    assert widths == sorted(widths) and widths[0] > 0
    for level in ("0.8", "0.9", "0.95"):
        cv, held_out = intervals["coverage"]["cv"][level], intervals["coverage"]["held_out"][level]
        assert abs(cv["coverage"] - float(level)) <= CV_TOLERANCE, (level, cv)
        assert abs(held_out["coverage"] - float(level)) <= HELD_OUT_TOLERANCE, (level, held_out)
        assert 0 < held_out["mean_width"] <= 2 * intervals["half_widths"][level]  # clipping only narrows
    assert len(intervals["coverage"]["cv_by_decile"]) == 10


@pytest.mark.e2e
def test_the_model_carries_its_intervals_explainer_means_and_card(pipeline_run: PipelineRun) -> None:
    metadata = json.loads(stored(pipeline_run, "print(json.dumps(dict(m.info.metadata)))"))
    assert metadata["intervals"]["half_widths"]["0.9"] > 0
    assert set(metadata["explainer"]["feature_means"]) >= {"gre_score", "cgpa"}
    card = stored(pipeline_run, "print(open(m.path_of('model_card.md')).read(), end='')")
    assert card.startswith(f"# Model card: {pipeline_run.model_tag}")
    for section in ("## Intended use", "never", "## Training data", "## Features", "## Metrics", "+-",
                    "## Prediction intervals", "## Limitations", "no protected attributes",
                    "Coefficients (change in the predicted chance",
                    "Permutation importance (held-out split)"):  # fmt: skip
        assert section in card, section
    data_sha = metadata["manifest"]["parameters"]["data_sha256"]
    assert data_sha in card


@pytest.mark.e2e
def test_the_global_view_has_coefficients_with_units_and_partial_dependence(pipeline_run: PipelineRun) -> None:
    view = json.loads((upstream(pipeline_run, "ExplainModel") / "global.json").read_text())
    cgpa = next(c for c in view["coefficients"] if c["feature"] == "cgpa")  # linear regression is selected
    assert cgpa["per_unit"] > 0 and "CGPA" in cgpa["unit"]
    for name in ("cgpa", "gre_score"):
        curve = view["partial_dependence"][name]["chance"]
        assert curve[-1] > curve[0] and all(0 <= c <= 1 for c in curve)
