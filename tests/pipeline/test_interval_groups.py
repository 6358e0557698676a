"""Intervals calibrated per group (issue 22): the kernel's arithmetic, old models, and the service's
intervals equal to the pipeline's for the same rows (no pipeline run: a small model fitted here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.contract import FEATURE_NAMES
from core.intervals import IntervalTable
from pipeline.data import TRAIN_FILE, load_split, prepare
from pipeline.intervals import BASELINE, CHOSEN, LEVELS, calibrate_table, conformal_quantile, rows_of
from pipeline.train import build_candidate
from service.extras import Options, batch_extras, single_extras
from tests.support.paths import RAW_DATA


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, np.ndarray, object, dict]:
    folder = tmp_path_factory.mktemp("data")
    prepare(RAW_DATA, folder, 0.2, 0.05, 42, folder / "kept.csv")
    features, target = load_split(folder, TRAIN_FILE)
    model = build_candidate("linear_regression", 42).fit(features, target)
    table, entry = calibrate_table(model, features, target, 42, CHOSEN)
    return features, target, model, {"table": table, "entry": entry}


def test_the_conformal_quantile_is_the_ceil_n_plus_one_rank() -> None:
    scores = np.arange(1, 20, dtype=float)  # 19 scores: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(scores, 0.9) == 18.0
    assert conformal_quantile(scores[:5], 0.95) == 5.0  # too few for the rank: the largest


def test_the_service_intervals_equal_the_pipelines_for_the_same_rows(calibrated: tuple) -> None:
    features, _, model, made = calibrated
    metadata = {"intervals": {"half_widths": {f"{k:g}": v for k, v in made["table"].half_widths.items()},
                              "default_level": 0.9, "adaptive": made["entry"]}}  # fmt: skip
    served = IntervalTable.from_metadata(metadata)  # what the service builds from the model's info
    chances = np.clip(model.predict(features), 0, 1)
    rows = rows_of(features)
    for level in LEVELS:
        expected = made["table"].pairs(chances, level, rows)
        got = batch_extras(served, Options(f"{level:g}", False), chances, rows)["intervals"]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        alone = [single_extras(served, Options(f"{level:g}", False), float(c), r.tolist())["interval"]
                 for c, r in zip(chances[:50], rows[:50], strict=True)]  # fmt: skip
        np.testing.assert_allclose(alone, expected[:50], rtol=0, atol=1e-12)


def test_widths_follow_the_uncertainty_and_levels_nest(calibrated: tuple) -> None:
    features, target, model, made = calibrated
    table = made["table"]
    chances = np.clip(model.predict(features), 0, 1)
    widths = {level: np.diff(table.pairs(chances, level, rows_of(features)), axis=1).ravel() for level in LEVELS}
    assert np.all(widths[0.8] <= widths[0.9] + 1e-12) and np.all(widths[0.9] <= widths[0.95] + 1e-12)
    assert widths[0.9].std() > 0.1 * widths[0.9].mean()  # not one width for everyone
    # wider where the model errs more: the widest third of the intervals holds larger residuals
    error = np.abs(target - chances)
    wide = widths[0.9] >= np.quantile(widths[0.9], 2 / 3)
    narrow = widths[0.9] <= np.quantile(widths[0.9], 1 / 3)
    assert error[wide].mean() > error[narrow].mean()


def test_a_model_from_before_keeps_the_constant_arithmetic() -> None:
    old = IntervalTable.from_metadata({"intervals": {"half_widths": {"0.9": 0.1}, "default_level": 0.9}})
    assert not old.needs_rows
    low, high = old.bounds(np.array([0.5]), 0.9)
    assert low[0] == pytest.approx(0.4) and high[0] == pytest.approx(0.6)
    assert single_extras(old, Options(None, False), 0.5, [320, 110, 4, 4.5, 4, 9.1, 1])["interval"] == [low[0], high[0]]


def test_an_adaptive_table_needs_the_rows_and_unseen_ratings_get_the_marginal_factor(calibrated: tuple) -> None:
    features, _, _model, made = calibrated
    table = made["table"]
    with pytest.raises(ValueError, match="pass the rows"):
        table.bounds(np.array([0.5]), 0.9)
    row = rows_of(features.iloc[:1]).copy()
    row[0, FEATURE_NAMES.index("university_rating")] = 2.5  # not a rating the calibration saw
    _low, high = table.bounds(np.array([0.5]), 0.9, row)
    expected = table.adaptive.scale(row)[0] * table.adaptive.marginal[0.9]
    assert high[0] - 0.5 == pytest.approx(expected)


def test_the_baseline_method_is_todays_constant_width(calibrated: tuple) -> None:
    features, target, model, _ = calibrated
    table, entry = calibrate_table(model, features, target, 42, BASELINE)
    chances = np.clip(model.predict(features), 0, 1)
    widths = np.diff(table.pairs(np.full(len(chances), 0.5), 0.9, rows_of(features)), axis=1)
    assert np.ptp(widths) == 0 and entry["groupings"] == []
