"""Intervals and explanations computed from the served chance: levels, clipping, route independence, sums."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.contract import FEATURE_NAMES
from core.intervals import IntervalTable, UnknownLevelError
from core.linear import probe_rows
from service.errors import InvalidInputError
from service.explain import LINEAR, TREES, Explainer
from service.extras import Options, batch_extras, single_extras
from service.predictor import Predictor
from tests.service.test_svc_predictor import training_frame

TABLE = IntervalTable.from_metadata({"intervals": {"half_widths": {"0.8": 0.06, "0.9": 0.1}, "default_level": 0.9}})


def test_the_default_level_another_calibrated_level_or_none() -> None:
    assert TABLE.level(None) == 0.9
    assert TABLE.level("0.8") == 0.8
    assert TABLE.level("none") is None


@pytest.mark.parametrize("asked", ["0.5", "0.99", "ninety"])
def test_a_level_that_was_not_calibrated_is_refused_naming_the_offered_ones(asked: str) -> None:
    with pytest.raises(UnknownLevelError, match=r"calibrated levels 0\.8, 0\.9, or none"):
        TABLE.level(asked)
    with pytest.raises(InvalidInputError, match=r"calibrated levels") as answered:  # what the service answers
        single_extras(TABLE, Options(asked, explain=False), 0.5)
    assert answered.value.status == 400 and answered.value.extra == {"field": "interval"}


def test_intervals_are_clipped_to_zero_and_one() -> None:
    low, high = TABLE.bounds(np.array([0.02, 0.5, 0.97]), 0.9)
    assert low.tolist()[0] == 0.0 and high.tolist()[2] == 1.0
    assert low[1] == pytest.approx(0.4) and high[1] == pytest.approx(0.6)


def test_a_row_gets_the_same_interval_alone_or_in_a_batch() -> None:
    chances = np.random.default_rng(3).uniform(0, 1, 1000)
    batch = batch_extras(TABLE, Options(None, False), chances)["intervals"].tolist()
    alone = [single_extras(TABLE, Options(None, False), float(c))["interval"] for c in chances]
    assert batch == alone  # elementwise IEEE arithmetic on the same doubles: equal bit for bit


def test_a_model_without_intervals_offers_none() -> None:
    table = IntervalTable.from_metadata({"candidate": "old"})
    assert table.level(None) is None
    assert single_extras(table, Options(None, False), 0.5) == {"interval": None, "interval_level": None}


def test_explain_must_be_true_or_false() -> None:
    assert Options.of({"explain": "true"}).explain and not Options.of({}).explain
    with pytest.raises(InvalidInputError, match="explain must be true or false"):
        Options.of({"explain": "maybe"})


def _rows(n: int = 300) -> np.ndarray:
    return np.random.default_rng(5).uniform(probe_rows()[0], probe_rows()[-2], size=(n, len(FEATURE_NAMES)))


def _means(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    return {"explainer": {"feature_means": {name: float(frame[name].mean()) for name in FEATURE_NAMES}}}


def _check_sums(explanations: list[dict], chances: np.ndarray) -> None:
    for explanation, chance in zip(explanations, chances, strict=True):
        total = explanation["base_value"] + sum(explanation["contributions"].values()) + explanation["clip_adjustment"]
        assert total == pytest.approx(float(chance), abs=1e-9)
        if 0 < chance < 1:  # not clipped: exactly 0, as documented (rounding once gave -1.1e-16)
            assert explanation["clip_adjustment"] == 0.0, (chance, explanation["clip_adjustment"])


def test_linear_contributions_are_weight_times_distance_from_the_mean_and_sum_to_the_chance() -> None:
    frame, y = training_frame()
    pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(frame, y)
    predictor = Predictor(pipeline, "admissions:t")
    explainer = Explainer(pipeline, predictor.affine, _means(frame))
    cgpa = FEATURE_NAMES.index("cgpa")
    beyond = _rows(2)
    beyond[:, cgpa] = [100.0, -100.0]  # far outside the contract: raw outputs above 1 and below 0
    rows = np.vstack([_rows(), beyond])
    chances = predictor.predict(rows)
    explanations = explainer.explain(rows, chances)
    assert explainer.method == LINEAR
    _check_sums(explanations, chances)
    weights, _ = predictor.affine  # type: ignore[misc]
    expected = weights[cgpa] * (rows[0, cgpa] - frame["cgpa"].mean())
    assert explanations[0]["contributions"]["cgpa"] == pytest.approx(expected, rel=1e-12)
    at_mean = pipeline.predict(frame.mean().to_frame().T)[0]
    assert explanations[0]["base_value"] == pytest.approx(at_mean, abs=1e-12)
    assert chances[-2:].tolist() == [1.0, 0.0]  # clipped
    assert explanations[-2]["clip_adjustment"] < -0.1 and explanations[-1]["clip_adjustment"] > 0.1
    assert all(e["clip_adjustment"] == 0.0 for e in explanations[:-2])  # the in-range rows: exactly 0


@pytest.mark.parametrize(
    "model",
    [
        RandomForestRegressor(n_estimators=20, min_samples_leaf=2, random_state=0),
        GradientBoostingRegressor(n_estimators=30, max_depth=3, subsample=0.8, random_state=0),
    ],
)
def test_tree_contributions_sum_to_the_chance(model: object) -> None:
    frame, y = training_frame()
    pipeline = make_pipeline(model).fit(frame, y)
    predictor = Predictor(pipeline, "admissions:t")
    explainer = Explainer(pipeline, predictor.affine, _means(frame))
    rows = _rows(50)
    chances = predictor.predict(rows)
    explanations = explainer.explain(rows, chances)
    assert explainer.method == TREES
    _check_sums(explanations, chances)
    raw = pipeline.predict(pd.DataFrame(rows, columns=list(FEATURE_NAMES)))
    unclipped = [e["base_value"] + sum(e["contributions"].values()) for e in explanations]
    np.testing.assert_allclose(unclipped, raw, rtol=0, atol=1e-9)
    # the target depends on CGPA alone: it must carry most of the credit
    cgpa = np.mean([abs(e["contributions"]["cgpa"]) for e in explanations])
    others = np.mean([sum(abs(v) for k, v in e["contributions"].items() if k != "cgpa") for e in explanations])
    assert cgpa > others
