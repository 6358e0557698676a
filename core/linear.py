"""The maths of linear models: a scaled linear pipeline as ``x @ w + b``, evaluated the same on every CPU.

The service predicts with this form when it reproduces the fitted pipeline (service/predictor.py), the
pipeline reports its coefficients (pipeline/explain.py), and explanations use its weights
(service/explain.py). scikit-learn objects are recognised by their class, not imported: this kernel
stays free of it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from core.contract import FEATURE_NAMES, FEATURES

AFFINE_TOLERANCE = 1e-9


def affine_rows(matrix: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """``matrix @ weights + bias`` with a fixed order of operations for every row, so a row's result
    does not depend on how many rows are computed with it, nor on the machine's BLAS."""
    out = np.full(matrix.shape[0], bias, dtype=np.float64)
    for column, weight in enumerate(weights):
        out += matrix[:, column] * weight
    return out


def probe_rows() -> np.ndarray:
    """Rows spanning the contract's ranges: the low corner, each feature raised alone to its maximum
    (so the rows are affinely independent and pin down any affine function), the high corner and
    the midpoint."""
    low = np.array([spec.minimum for spec in FEATURES], dtype=np.float64)
    high = np.array([spec.maximum for spec in FEATURES], dtype=np.float64)
    axes = [np.where(np.arange(len(low)) == i, high, low) for i in range(len(low))]
    return np.vstack([low, *axes, high, (low + high) / 2])


def affine_form(pipeline: Any) -> tuple[np.ndarray, float] | None:
    """(w, b) with ``pipeline.predict(X) == X @ w + b`` on the probe rows (to 1e-9), or None if the
    pipeline is not standard scaling followed by a scikit-learn linear model."""
    if tuple(getattr(pipeline, "feature_names_in_", FEATURE_NAMES)) != FEATURE_NAMES:
        return None  # fitted on other columns, or in another order
    steps = [step for _, step in getattr(pipeline, "steps", [])]
    if not steps or not all(_is_standard_scaler(step) for step in steps[:-1]):
        return None
    final = steps[-1]
    if not type(final).__module__.startswith("sklearn.linear_model") or not hasattr(final, "coef_"):
        return None
    weights = np.asarray(final.coef_, dtype=np.float64).reshape(-1)
    if weights.shape != (len(FEATURE_NAMES),):
        return None
    bias = float(np.asarray(final.intercept_, dtype=np.float64).reshape(-1)[0])
    for scaler in reversed(steps[:-1]):  # fold each scaler into (w, b), last first
        mean = scaler.mean_ if scaler.with_mean else np.zeros_like(weights)
        scale = scaler.scale_ if scaler.with_std else np.ones_like(weights)
        weights = weights / scale
        bias -= float(mean @ weights)
    probe = probe_rows()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The columns were checked above, so an array stands for the DataFrame it was fitted on.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        expected = np.asarray(pipeline.predict(probe), dtype=np.float64)
    actual = affine_rows(probe, weights, bias)
    if caught or not np.allclose(actual, expected.reshape(-1), rtol=0, atol=AFFINE_TOLERANCE):
        return None
    return weights, bias


def _is_standard_scaler(step: Any) -> bool:
    kind = type(step)
    return kind.__name__ == "StandardScaler" and kind.__module__.startswith("sklearn.preprocessing")
