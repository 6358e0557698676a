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

# Stated tolerances: CV coverage pools 960 out-of-fold predictions of 320 applicants (binomial sd ~1.7
# points at 90% counting applicants), so 3 points below nominal; above nominal up to 5 points (calibrating
# per university rating is conservative in small ratings: 93% at 90% on the vendored data). The
# held-out split has 80 rows (sd ~3.4 points), so it gets about three standard deviations.
CV_BELOW, CV_ABOVE, HELD_OUT_TOLERANCE = 0.03, 0.05, 0.10
# Per judged group (>= 80 predictions, i.e. >= 27 applicants): sd at 80% for 27 applicants is ~7.7 points,
# so a group is asserted no lower than 15 points (two sd) under nominal; the 5 points is reported.
GROUP_BELOW = 0.15


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
        assert -CV_BELOW <= cv["coverage"] - float(level) <= CV_ABOVE, (level, cv)
        assert abs(held_out["coverage"] - float(level)) <= HELD_OUT_TOLERANCE, (level, held_out)
        # half_widths is the mean over the calibration rows; widths vary by applicant, so only a sanity bound
        assert 0 < held_out["mean_width"] <= 4 * intervals["half_widths"][level]
    assert len(intervals["coverage"]["cv_by_decile"]) == 10


@pytest.mark.e2e
def test_coverage_and_errors_are_reported_by_group_and_judged_groups_hold(pipeline_run: PipelineRun) -> None:
    coverage = json.loads((upstream(pipeline_run, "CalibrateIntervals") / "intervals.json").read_text())["coverage"]
    groups = coverage["cv_groups"]
    breakdowns = {g["breakdown"] for g in groups}
    assert breakdowns == {"decile of the predicted chance", "university rating", "research", "decile of CGPA"}
    judged = [g for g in groups if g["judged"]]
    assert {g["breakdown"] for g in judged} == {"decile of the predicted chance", "university rating", "research"}
    for group in judged:
        assert group["predictions"] >= 80
        for level in (0.8, 0.9, 0.95):
            assert group[f"coverage_{level:g}"] >= level - GROUP_BELOW, group
    widths = [g["width_0.9"] for g in groups if g["breakdown"] == "decile of the predicted chance"]
    assert max(widths) > 1.2 * min(widths)  # widths follow the uncertainty, not one width for all
    assert {g["breakdown"] for g in coverage["held_out_groups"]} == breakdowns
    assert all({"rmse", "bias", "applicants"} <= set(g) for g in groups + coverage["held_out_groups"])


@pytest.mark.e2e
def test_the_model_carries_its_intervals_explainer_means_and_card(pipeline_run: PipelineRun) -> None:
    metadata = json.loads(stored(pipeline_run, "print(json.dumps(dict(m.info.metadata)))"))
    assert metadata["intervals"]["half_widths"]["0.9"] > 0
    assert set(metadata["explainer"]["feature_means"]) >= {"gre_score", "cgpa"}
    card = stored(pipeline_run, "print(open(m.path_of('model_card.md')).read(), end='')")
    assert card.startswith(f"# Model card: {pipeline_run.model_tag}")
    for section in ("## Intended use", "never", "## Training data", "## Features", "## Metrics", "+-",
                    "## Prediction intervals", "## Limitations", "no protected attributes",
                    "What it guarantees", "## Errors and intervals by group",
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
