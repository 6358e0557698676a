"""The registered sklearn pipeline, prepared to predict fast from plain float arrays.

The pipeline was fitted on a DataFrame with the contract's columns, so sklearn would warn (and spend
~1 ms building and checking a DataFrame) on every call. Instead, at load time we check that the model
expects exactly ``FEATURE_NAMES`` in that order, make a copy without the stored column names, and
prove on probe rows that the copy fed an array predicts what the original predicts from a DataFrame
(to 1e-12: the memory layout changes the summation order, not the model). If any check fails we keep
the DataFrame path: slower, never wrong.

For one row even the array path is mostly sklearn's per-call checks (~0.3 ms of a ~0.35 ms call,
py-spy). When the pipeline is affine (standard scaling followed by a linear model, as the pipeline's
linear candidates are) it collapses to ``x @ w + b``; that form is used only after it reproduces the
pipeline on the probe rows to within 1e-9, and any other model keeps the sklearn path.

Same applicant, same chance, whatever the route: the affine form is evaluated one column at a time
(``b + x0*w0 + x1*w1 + ...``, elementwise IEEE operations), never with a matrix product, whose BLAS
kernel, and so its rounding, depends on the CPU and on the number of rows (a (1, 7) row and an
(n, 7) matrix differed in the last bit on AVX-512). Tree models already predict each row on its own.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import pandas as pd

from core.contract import FEATURE_NAMES, to_chance
from core.linear import affine_form, affine_rows, probe_rows


class Predictor:
    """Chances of admission from an (n, 7) float array whose columns follow ``FEATURE_NAMES``."""

    def __init__(self, pipeline: Any, tag: str) -> None:
        # scikit-learn is imported here, not at module import: `bentoml build` imports the service
        # only to read its definition, and scikit-learn would add ~1.5 s to every build.
        from sklearn import config_context

        self._config_context = config_context
        self.tag = tag
        self.original = pipeline
        self.fast = _array_ready_copy(pipeline)
        self.affine = affine_form(pipeline) if self.fast is not None else None

    @classmethod
    def from_store(cls, bento_model: Any) -> Predictor:
        """From a ``bentoml.Model`` (what a ``BentoModel`` attribute resolves to)."""
        import bentoml

        return cls(bentoml.sklearn.load_model(bento_model), str(bento_model.tag))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Clipped chances; inputs were validated against the contract, so finiteness checks are skipped."""
        matrix = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))
        if self.affine is not None:
            return to_chance(affine_rows(matrix, *self.affine))
        with self._config_context(assume_finite=True):
            if self.fast is not None:
                raw = self.fast.predict(matrix)
            else:
                raw = self.original.predict(pd.DataFrame(matrix, columns=list(FEATURE_NAMES)))
        return to_chance(raw)


def _array_ready_copy(pipeline: Any) -> Any | None:
    names = getattr(pipeline, "feature_names_in_", None)
    if names is None or tuple(names) != FEATURE_NAMES:
        return None
    fast = copy.deepcopy(pipeline)
    for estimator in _estimators(fast):
        if "feature_names_in_" in vars(estimator):  # set by fit (a Pipeline only forwards it)
            del estimator.feature_names_in_
    probe = probe_rows()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            expected = pipeline.predict(pd.DataFrame(probe, columns=list(FEATURE_NAMES)))
            actual = fast.predict(probe)
        except Exception:
            return None
    same = np.allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64), rtol=0, atol=1e-12)
    if caught or not same:  # bit-equality is too strict: a DataFrame's memory layout changes summation order
        return None  # e.g. a step that selects columns by name: keep the DataFrame path
    return fast


def _estimators(estimator: Any) -> list[Any]:
    """The estimator and every step nested in it (pipelines of pipelines included)."""
    found = [estimator]
    for _, step in getattr(estimator, "steps", []):
        found.extend(_estimators(step))
    return found
