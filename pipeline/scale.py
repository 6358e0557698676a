"""Bounds that keep every task's cost flat as the raw file grows (issues 12 and 22).

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

The steps after selection predict with the selected model many times over; their cost is rows x
passes x the model's cost per row, which differs 120-fold between linear regression and the forest
(docs/pipeline-scale.md). Each runs on a seeded sample (in file order) once its data is larger than its
bound, and on every row below it (the vendored data is below every bound, so its results do not move):

- permutation importance (ExplainModel): ``IMPORTANCE_MAX_ROWS`` held-out rows (7 features x 10
  shuffles: 70 passes);
- partial dependence (ExplainModel): ``PARTIAL_DEPENDENCE_MAX_ROWS`` training rows (21 grid values x 2
  features: 42 passes);
- the points of a scatter plot (EvaluateModel, ReportRun): ``PLOT_MAX_POINTS`` (the scores are still
  computed on every row);
- the champion's error on the new labels (PromoteModel): ``GATE_MAX_ROWS`` rows of the new training
  and held-out data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")

CV_MAX_ROWS = 20_000
FOREST_MAX_SAMPLES = 1_000
BOOSTING_MAX_SAMPLES = 10_000
assert max(FOREST_MAX_SAMPLES, BOOSTING_MAX_SAMPLES) <= CV_MAX_ROWS * 4 // 5  # a 5-fold CV fold can hold them
# Standard error of a mean chance over 2,000 rows: ~0.14 / sqrt(2000) = 0.003; of an RMSE over 5,000
# rows: ~1% of it; of the gate's RMSE ratio over 20,000 rows: ~0.5% (its threshold is 1.5 x).
IMPORTANCE_MAX_ROWS = 5_000
PARTIAL_DEPENDENCE_MAX_ROWS = 2_000
PLOT_MAX_POINTS = 5_000
GATE_MAX_ROWS = 20_000


def at_scale(rows: int | None) -> bool:
    """Whether a training split of ``rows`` rows gets the bounded candidates."""
    return rows is not None and rows > CV_MAX_ROWS


def sample_positions(rows: int, limit: int, seed: int) -> np.ndarray | None:
    """Positions of a seeded sample of ``limit`` of ``rows`` rows, in file order; None when ``rows <= limit``
    (every row, untouched)."""
    if rows <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))


def sample_rows(
    features: pd.DataFrame, target: np.ndarray | None, limit: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """``features`` and ``target`` themselves up to ``limit`` rows; past it, the same seeded sample of both."""
    chosen = sample_positions(len(features), limit, seed)
    if chosen is None:
        return features, target
    return features.iloc[chosen], None if target is None else target[chosen]


def cv_rows(features: pd.DataFrame, target: np.ndarray, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows cross-validation uses: all of them, or a seeded sample of ``CV_MAX_ROWS`` (in file order)."""
    rows, sampled = sample_rows(features, target, CV_MAX_ROWS, seed)
    assert sampled is not None
    return rows, sampled


def in_processes(function: Callable[..., T], calls: Sequence[tuple[Any, ...]], jobs: int) -> list[T]:
    """``function(*call)`` for every call, in order, over ``jobs`` processes: this one and ``jobs - 1``
    forked ones (fork shares the imported libraries).

    The calling process takes every ``jobs``-th call instead of waiting for a pool of ``jobs``: one
    process fewer, and a forked process's resident size counts every page it shares with its parent,
    so with two Luigi workers each forking CV processes the tree's summed RSS was 1.9 GB at a million
    rows (docs/pipeline-scale.md). The calls are independent and seeded, so results do not depend on
    ``jobs``; ``jobs <= 1`` runs them here, one after the other.
    """
    if jobs <= 1 or len(calls) < 2:
        return [function(*call) for call in calls]
    import multiprocessing

    mine = range(0, len(calls), jobs)
    theirs = [at for at in range(len(calls)) if at % jobs]
    results: dict[int, T] = {}
    with multiprocessing.get_context("fork").Pool(jobs - 1) as pool:
        pending = pool.starmap_async(function, [calls[at] for at in theirs], chunksize=1)
        results.update((at, function(*calls[at])) for at in mine)
        results.update(zip(theirs, pending.get(), strict=True))
    return [results[at] for at in range(len(calls))]
