"""How the registered model behaves: bounded chances, monotone in merit, and good enough."""

import bentoml
import numpy as np
import pandas as pd
import pytest

from core.contract import FEATURE_NAMES, to_chance
from tests.support.pipeline import PipelineRun

pytestmark = pytest.mark.e2e

TYPICAL = {
    "gre_score": 316,
    "toefl_score": 107,
    "university_rating": 3,
    "sop": 3.5,
    "lor": 3.5,
    "cgpa": 8.5,
    "research": 1,
}


@pytest.fixture(scope="module")
def model(pipeline_run: PipelineRun):
    return bentoml.sklearn.load_model(pipeline_run.model_tag)


def predict(model, rows: list[dict]) -> np.ndarray:
    return to_chance(model.predict(pd.DataFrame(rows, columns=list(FEATURE_NAMES))))


@pytest.mark.parametrize(
    ("feature", "low", "high"), [("cgpa", 6.8, 9.9), ("gre_score", 290, 340), ("toefl_score", 92, 120)]
)
def test_more_merit_never_lowers_the_chance(model, feature: str, low: float, high: float) -> None:
    grid = np.linspace(low, high, 25)
    values = grid.round().astype(int) if feature != "cgpa" else grid
    chances = predict(model, [{**TYPICAL, feature: value} for value in values])
    assert (np.diff(chances) >= -1e-12).all(), chances


def test_research_experience_does_not_lower_the_chance(model) -> None:
    without, with_research = predict(model, [{**TYPICAL, "research": 0}, {**TYPICAL, "research": 1}])
    assert with_research >= without


def test_extreme_profiles_still_give_chances_in_zero_one(model) -> None:
    best = {"gre_score": 340, "toefl_score": 120, "university_rating": 5, "sop": 5, "lor": 5, "cgpa": 10, "research": 1}
    worst = {"gre_score": 260, "toefl_score": 0, "university_rating": 1, "sop": 1, "lor": 1, "cgpa": 0, "research": 0}
    chances = predict(model, [best, worst])
    assert ((chances >= 0) & (chances <= 1)).all()
    assert chances[0] > chances[1]


def test_registered_metrics_meet_the_paper_baseline(pipeline_run: PipelineRun) -> None:
    metrics = bentoml.models.get(pipeline_run.model_tag).info.metadata["metrics"]
    assert metrics["cv"]["r2"]["mean"] > 0.75
    assert metrics["test"]["r2"] > 0.75
    assert 0 <= metrics["test_prediction_range"][0] <= metrics["test_prediction_range"][1] <= 1
