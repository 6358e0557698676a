"""The prediction fast paths agree with the sklearn pipeline they stand for, or are not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from core.contract import FEATURE_NAMES
from core.linear import probe_rows
from service.predictor import Predictor


def training_frame(columns: list[str] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    low, high = probe_rows()[0], probe_rows()[-2]
    x = rng.uniform(low, high, size=(200, len(FEATURE_NAMES)))
    y = 0.3 + 0.05 * (x[:, 5] - 5) + rng.normal(0, 0.02, 200)
    return pd.DataFrame(x, columns=columns or list(FEATURE_NAMES)), y


def reference(pipeline: object, rows: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame(rows, columns=list(FEATURE_NAMES))
    return np.clip(pipeline.predict(frame), 0, 1)  # type: ignore[attr-defined]


@pytest.mark.parametrize("estimator", [LinearRegression(), Ridge(alpha=3.0)])
def test_affine_pipelines_collapse_to_weights(estimator: object) -> None:
    frame, y = training_frame()
    pipeline = make_pipeline(StandardScaler(), estimator).fit(frame, y)
    predictor = Predictor(pipeline, "admissions:t")
    assert predictor.affine is not None
    rows = np.random.default_rng(1).uniform(probe_rows()[0], probe_rows()[-2], size=(500, 7))
    np.testing.assert_allclose(predictor.predict(rows), reference(pipeline, rows), rtol=0, atol=1e-9)


def test_non_affine_model_keeps_sklearn_on_arrays() -> None:
    frame, y = training_frame()
    pipeline = make_pipeline(MinMaxScaler(), RandomForestRegressor(n_estimators=5, random_state=0)).fit(frame, y)
    predictor = Predictor(pipeline, "admissions:t")
    assert predictor.affine is None and predictor.fast is not None
    rows = probe_rows()
    np.testing.assert_allclose(predictor.predict(rows), reference(pipeline, rows), rtol=0, atol=1e-12)


def test_model_with_other_columns_keeps_the_dataframe_path() -> None:
    frame, y = training_frame(columns=list(reversed(FEATURE_NAMES)))
    pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(frame, y)
    predictor = Predictor(pipeline, "admissions:t")
    assert not predictor.fast is not None and predictor.affine is None
    with pytest.raises(ValueError, match="feature names"):
        predictor.predict(probe_rows())  # the columns do not match the contract: an error, never a wrong answer


def test_predictions_are_clipped_to_chances() -> None:
    frame, _ = training_frame()
    pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(frame, frame["cgpa"] * 10)
    chances = Predictor(pipeline, "admissions:t").predict(probe_rows())
    assert chances.min() >= 0 and chances.max() <= 1 and chances.max() == 1


@pytest.mark.parametrize(
    "estimator",
    [
        make_pipeline(StandardScaler(), LinearRegression()),
        make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        make_pipeline(RandomForestRegressor(n_estimators=20, min_samples_leaf=2, random_state=0)),
    ],
    ids=["linear", "ridge", "forest"],
)
def test_a_row_gets_the_same_chance_alone_or_in_any_batch(estimator: object) -> None:
    """Issue 9 item 1: /predict (one row) and /predict_batch (n rows) must agree bit for bit. The code
    guarantees it (no matrix product), so this holds whichever BLAS kernel a machine picks."""
    frame, y = training_frame()
    predictor = Predictor(estimator.fit(frame, y), "admissions:t")  # type: ignore[attr-defined]
    rows = np.random.default_rng(2).uniform(probe_rows()[0], probe_rows()[-2], size=(1_031, 7))
    batch = predictor.predict(rows)
    fortran = predictor.predict(np.asfortranarray(rows))
    for i in (0, 1, 517, 1_030):
        alone = predictor.predict(rows[i : i + 1].copy())
        assert alone[0] == batch[i] == fortran[i]
    for size in (2, 7, 64, 1_000):
        np.testing.assert_array_equal(predictor.predict(rows[:size].copy()), batch[:size])
