"""CalibrateIntervals: conformal prediction intervals for the selected model, and their measured coverage.

Calibration (MAPIE's ``CrossConformalRegressor``, method ``base``, absolute residual score): the
half-width at each level is the conformal quantile of out-of-fold absolute residuals on the training
split, so every residual comes from a model that did not train on that row. The served model is the
one fitted on the whole training split, so an interval is ``chance +- half-width``, clipped to [0, 1]
(core/intervals.py): the half-widths are stored as plain numbers with the model.

Coverage is measured, never assumed: on the held-out split (rows neither the model nor the calibration
saw), and by repeated k-fold CV (each outer fold calibrated on its own training rows only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import luigi
import numpy as np
import pandas as pd
from luigi.util import inherits

from core.contract import to_chance
from core.intervals import IntervalTable
from pipeline.data import TEST_FILE, TRAIN_FILE, PrepareData, load_split
from pipeline.provenance import write_json
from pipeline.selection import SelectModel
from pipeline.task import PipelineTask
from pipeline.train import load_model

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

INTERVALS_FILE, OUT_OF_FOLD_FILE = "intervals.json", "coverage_out_of_fold.csv"
LEVELS = (0.8, 0.9, 0.95)
DEFAULT_LEVEL = 0.9
CALIBRATION_FOLDS = 5


def half_widths(model: Pipeline, features: pd.DataFrame, target: np.ndarray, seed: int) -> dict[float, float]:
    """The conformal half-width per level, from MAPIE's cross-conformal calibration of a fresh copy of ``model``."""
    from mapie.regression import CrossConformalRegressor
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    folds = KFold(CALIBRATION_FOLDS, shuffle=True, random_state=seed)
    conformal = CrossConformalRegressor(clone(model), confidence_level=list(LEVELS), method="base", cv=folds)
    conformal.fit_conformalize(features, target)
    centre, bounds = conformal.predict_interval(features.iloc[:1])
    # With method "base" and absolute scores the interval is centre +- a constant: read that constant.
    return {level: float(bounds[0, 1, i] - centre[0]) for i, level in enumerate(LEVELS)}


def coverage(table: IntervalTable, chances: np.ndarray, actual: np.ndarray) -> dict[str, dict[str, float]]:
    """Share of ``actual`` inside the served interval, and the mean width, per level."""
    result = {}
    for level in sorted(table.half_widths):
        low, high = table.bounds(chances, level)
        result[f"{level:g}"] = {
            "coverage": float(np.mean((actual >= low) & (actual <= high))),
            "mean_width": float(np.mean(high - low)),
        }
    return result


def _outer_fold(
    model: Pipeline, features: pd.DataFrame, target: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int
) -> pd.DataFrame:
    """Calibrate on one outer fold's training rows; the served chance and each level's bounds for its test rows."""
    from sklearn.base import clone

    fitted = clone(model).fit(features.iloc[train], target[train])
    table = IntervalTable(half_widths(model, features.iloc[train], target[train], seed), DEFAULT_LEVEL)
    chances = to_chance(fitted.predict(features.iloc[test]))
    frame = pd.DataFrame({"row": features.index[test], "chance": chances, "actual": target[test]})
    for level in LEVELS:
        frame[f"low_{level:g}"], frame[f"high_{level:g}"] = table.bounds(chances, level)
    return frame


def cross_validated(
    model: Pipeline, features: pd.DataFrame, target: np.ndarray, folds: int, repeats: int, seed: int, jobs: int
) -> pd.DataFrame:
    """Out-of-fold chances and interval bounds of every training row, once per repeat."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import RepeatedKFold

    splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    backend = "multiprocessing" if jobs > 1 else "sequential"
    frames = Parallel(n_jobs=jobs, backend=backend)(
        delayed(_outer_fold)(model, features, target, train, test, seed) for train, test in splitter.split(features)
    )
    return pd.concat(frames, ignore_index=True)


def frame_coverage(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    result = {}
    for level in LEVELS:
        low, high = frame[f"low_{level:g}"], frame[f"high_{level:g}"]
        inside = (frame["actual"] >= low) & (frame["actual"] <= high)
        result[f"{level:g}"] = {"coverage": float(inside.mean()), "mean_width": float((high - low).mean())}
    return result


def by_decile(frame: pd.DataFrame, level: float = DEFAULT_LEVEL) -> list[dict[str, float]]:
    """Coverage within each decile of the predicted chance (is the interval as good for weak applicants?)."""
    decile = pd.qcut(frame["chance"].rank(method="first"), 10, labels=False)
    inside = (frame["actual"] >= frame[f"low_{level:g}"]) & (frame["actual"] <= frame[f"high_{level:g}"])
    grouped = pd.DataFrame({"decile": decile, "inside": inside, "chance": frame["chance"]}).groupby("decile")
    return [
        {
            "decile": int(d) + 1,
            "rows": len(g),
            "coverage": float(g["inside"].mean()),
            "mean_chance": float(g["chance"].mean()),
        }
        for d, g in grouped
    ]


class Intervals(TypedDict):
    """intervals.json: the half-width per level, the default level, and coverage measured three ways."""

    method: str
    half_widths: dict[str, float]  # level (as text, e.g. "0.9") -> half-width
    default_level: float
    calibration_rows: int
    coverage: dict[str, Any]  # held_out, cv, cv_by_decile and their row counts


def load_intervals(folder: Path) -> Intervals:
    """The intervals CalibrateIntervals wrote into ``folder``."""
    intervals: Intervals = json.loads((folder / INTERVALS_FILE).read_text())
    return intervals


def calibrate(
    selection_dir: Path, data_dir: Path, folder: Path, folds: int, repeats: int, seed: int, jobs: int
) -> dict[str, Any]:
    model = load_model(selection_dir)
    features, target = load_split(data_dir, TRAIN_FILE)
    test_features, test_target = load_split(data_dir, TEST_FILE)
    widths = half_widths(model, features, target, seed)
    table = IntervalTable(widths, DEFAULT_LEVEL)
    out_of_fold = cross_validated(model, features, target, folds, repeats, seed, jobs)
    out_of_fold.to_csv(folder / OUT_OF_FOLD_FILE, index=False, float_format="%.10g")
    held_out = coverage(table, to_chance(model.predict(test_features)), test_target)
    intervals: Intervals = {
        "method": "MAPIE CrossConformalRegressor (method=base, absolute residuals, "
        f"{CALIBRATION_FOLDS}-fold on the training split); served as chance +- half-width, clipped to [0, 1]",
        "half_widths": {f"{level:g}": width for level, width in widths.items()},
        "default_level": DEFAULT_LEVEL,
        "calibration_rows": len(target),
        "coverage": {
            "held_out": held_out,
            "held_out_rows": len(test_target),
            "cv": frame_coverage(out_of_fold),
            "cv_rows": len(out_of_fold),
            "cv_by_decile": by_decile(out_of_fold),
        },
    }
    write_json(folder / INTERVALS_FILE, intervals)
    return {"intervals": {k: intervals[k] for k in ("half_widths", "default_level")}}


@inherits(SelectModel)
class CalibrateIntervals(PipelineTask):
    """intervals.json: half-width per level, and coverage on held-out data and by CV; out-of-fold bounds."""

    cv_folds: int
    cv_repeats: int
    cv_jobs = luigi.IntParameter(default=2, significant=False, description="processes for the CV folds")

    def requires(self) -> dict[str, luigi.Task]:
        return {"selection": self.clone(SelectModel), "data": self.clone(PrepareData)}

    def produce(self, folder: Path) -> dict[str, Any]:
        return calibrate(
            self.input_dir("selection"),
            self.input_dir("data"),
            folder,
            self.cv_folds,
            self.cv_repeats,
            self.seed,
            self.cv_jobs,
        )
