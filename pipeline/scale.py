"""Bounds that keep training and cross-validation cost flat as the raw file grows (issue 12).

Up to ``CV_MAX_ROWS`` training rows nothing changes: every candidate fits on every row and CV uses
every row, as on the vendored 500-row file. Above it:

- CV runs on a seeded sample of ``CV_MAX_ROWS`` training rows (the held-out split is still scored
  in full), so its cost no longer grows with the file;
- the random forest's trees each see ``FOREST_MAX_SAMPLES`` rows (``max_samples``), which bounds both
  its fitting time and the size of the model file the service loads;
- gradient boosting fits on a seeded sample of ``BOOSTING_MAX_SAMPLES`` rows (a one-member
  ``BaggingRegressor``). Not the histogram booster: its OpenMP threads deadlock in the forked CV
  processes once the parent has used them (measured), and a bounded sample needs no threads.

The sample sizes are below a CV fold's training rows (4/5 of ``CV_MAX_ROWS``), so the models CV
scores are the ones trained: same per-tree and per-model sample sizes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CV_MAX_ROWS = 20_000
FOREST_MAX_SAMPLES = 1_000
BOOSTING_MAX_SAMPLES = 10_000
assert max(FOREST_MAX_SAMPLES, BOOSTING_MAX_SAMPLES) <= CV_MAX_ROWS * 4 // 5  # a 5-fold CV fold can hold them


def at_scale(rows: int | None) -> bool:
    """Whether a training split of ``rows`` rows gets the bounded candidates."""
    return rows is not None and rows > CV_MAX_ROWS


def cv_rows(features: pd.DataFrame, target: np.ndarray, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows cross-validation uses: all of them, or a seeded sample of ``CV_MAX_ROWS`` (in file order)."""
    if len(features) <= CV_MAX_ROWS:
        return features, target
    chosen = np.sort(np.random.default_rng(seed).choice(len(features), size=CV_MAX_ROWS, replace=False))
    return features.iloc[chosen], target[chosen]
