"""Plots a person would rather look at than read: predictions, residuals, candidate comparison.

Uses matplotlib's object API (``Figure``), not pyplot: no global state, no display backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_META = {"Software": None}  # keep PNG bytes free of version strings


def _figure(ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    return figure, figure.subplots(1, ncols)


def plot_predictions(actual: np.ndarray, predicted: np.ndarray, title: str, path: Path, seed: int = 0) -> None:
    """Predicted against actual (left) and residuals against predicted (right); past
    ``pipeline.scale.PLOT_MAX_POINTS`` rows, a seeded sample of them (the title says so)."""
    from pipeline.scale import PLOT_MAX_POINTS, sample_positions

    chosen = sample_positions(len(actual), PLOT_MAX_POINTS, seed)
    if chosen is not None:
        title = f"{title} (a seeded sample of {len(chosen):,} of {len(actual):,} rows)"
        actual, predicted = actual[chosen], predicted[chosen]
    figure, (left, right) = _figure(2, figsize=(9, 4), dpi=80)
    left.scatter(actual, predicted, s=12, alpha=0.7)
    left.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    left.set(
        xlim=(0.3, 1), ylim=(0.3, 1), xlabel="actual chance", ylabel="predicted chance", title="Predicted vs actual"
    )
    residuals = actual - predicted
    right.scatter(predicted, residuals, s=12, alpha=0.7)
    right.axhline(0, color="grey", linestyle="--", linewidth=1)
    right.set(xlabel="predicted chance", ylabel="actual - predicted", title="Residuals")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, metadata=PLOT_META)


def plot_comparison(ranking: pd.DataFrame, chosen: str, path: Path) -> None:
    figure, axis = _figure(figsize=(7, 3.5), dpi=80)
    colours = ["tab:green" if name == chosen else "tab:blue" for name in ranking["candidate"]]
    axis.barh(
        ranking["candidate"],
        ranking["cv_rmse"],
        xerr=ranking["cv_rmse_std"],
        color=colours,
        alpha=0.8,
        label="CV RMSE (+- std)",
    )
    axis.scatter(ranking["test_rmse"], ranking["candidate"], color="black", marker="D", zorder=3, label="held-out RMSE")
    axis.invert_yaxis()
    axis.set(xlabel="RMSE of the chance of admission (lower is better)", title=f"Candidates (chosen: {chosen})")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, metadata=PLOT_META)
