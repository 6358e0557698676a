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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import luigi
import numpy as np
import pandas as pd
from luigi.util import inherits

from core.contract import FEATURE_NAMES, to_chance
from core.intervals import CHANCE, Adaptive, IntervalTable
from core.linear import affine_rows
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
# Past this many training rows, calibration (and its measurement by CV) uses a seeded sample of this
# size: a conformal quantile from 20,000 residuals is within ~0.2 points of coverage of the full one
# (binomial sd at 90%), and the cost stops growing with the file (the card states the sample).
CALIBRATION_MAX_ROWS = 20_000
# Groups whose coverage is judged must hold at least this many predictions (issue 22); the CV that
# measures the intervals repeats until every decile of the predicted chance reaches it.
JUDGED_MIN_PREDICTIONS = 80
# The groupings an interval can be calibrated in (bench/interval_methods.py compares them).
GROUPINGS = (CHANCE, "university_rating", "research")
CHANCE_BINS = 10
SCALE_FLOOR_QUANTILE = 0.05  # the scale never goes below the 5th percentile of the fitted scales


@dataclass(frozen=True)
class Method:
    """How intervals are calibrated: a scale model (``features``: log-linear in the seven features;
    ``none``: constant) and the groupings calibrated separately (empty: one marginal quantile)."""

    scale: str = "features"
    groupings: tuple[str, ...] = ("university_rating",)

    def describe(self) -> str:
        scale = (
            "residuals normalised by a log-linear model of their size in the seven features "
            "(MAPIE's ResidualNormalisedScore form, cross-fitted)"
            if self.scale == "features"
            else "absolute residuals"
        )
        groups = (
            f"group-conditional (Mondrian) quantiles per {', '.join(_GROUP_NAMES[g] for g in self.groupings)}, "
            "each applicant getting the largest of its groups'"
            if self.groupings
            else "one quantile for all applicants"
        )
        return (
            f"Cross-conformal ({CALIBRATION_FOLDS}-fold, out-of-fold residuals of the training split): {scale}; "
            f"{groups}; served as chance +- scale x quantile, clipped to [0, 1]"
        )


# Chosen by measurement (docs/model-card.md, bench/interval_methods.py): normalised by the features,
# calibrated per university rating. Max over decile, rating and research was too wide (+41%).
CHOSEN = Method()
BASELINE = Method(scale="none", groupings=())
_GROUP_NAMES = {
    CHANCE: "decile of the predicted chance",
    "university_rating": "university rating",
    "research": "research",
}


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) level)-th smallest score (the largest when the
    group is too small for that rank, then without the finite-sample guarantee)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    rank = int(np.ceil((len(ordered) + 1) * level))
    return float(ordered[min(rank, len(ordered)) - 1])


def out_of_fold_chances(model: Pipeline, features: pd.DataFrame, target: np.ndarray, seed: int) -> np.ndarray:
    """Each training row's chance from a copy of ``model`` fitted on the other folds."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_val_predict

    folds = KFold(CALIBRATION_FOLDS, shuffle=True, random_state=seed)
    return to_chance(cross_val_predict(clone(model), features, target, cv=folds))


def _fit_scale(matrix: np.ndarray, residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and bias of log|residual| ~ features (least squares), as MAPIE's ResidualNormalisedScore."""
    from sklearn.linear_model import LinearRegression

    floor = max(float(np.quantile(residuals, 0.05)), 1e-4)  # log of a near-zero residual is an outlier
    fitted = LinearRegression().fit(matrix, np.log(np.maximum(residuals, floor)))
    return np.asarray(fitted.coef_, dtype=np.float64), float(fitted.intercept_)


def calibrate_table(
    model: Pipeline, features: pd.DataFrame, target: np.ndarray, seed: int, method: Method = CHOSEN
) -> tuple[IntervalTable, dict[str, Any]]:
    """The interval table of ``model`` fitted on these rows, and the metadata entry that rebuilds it."""
    from sklearn.model_selection import KFold

    chances = out_of_fold_chances(model, features, target, seed)
    residuals = np.abs(target - chances)
    matrix = features[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    if method.scale == "features":
        weights, bias = _fit_scale(matrix, residuals)
        scale = np.empty(len(target))  # cross-fitted: a row's scale comes from a model that did not see it
        for train, test in KFold(CALIBRATION_FOLDS, shuffle=True, random_state=seed + 1).split(matrix):
            w, b = _fit_scale(matrix[train], residuals[train])
            scale[test] = np.exp(affine_rows(matrix[test], w, b))
        floor = float(np.quantile(np.exp(affine_rows(matrix, weights, bias)), SCALE_FLOOR_QUANTILE))
        scale = np.maximum(scale, floor)
    else:
        weights, bias, floor, scale = np.zeros(len(FEATURE_NAMES)), 0.0, 1.0, np.ones(len(target))
    scores = residuals / scale
    marginal = {level: conformal_quantile(scores, level) for level in LEVELS}
    groupings = []
    for by in method.groupings:
        if by == CHANCE:
            edges = np.quantile(chances, np.arange(1, CHANCE_BINS) / CHANCE_BINS)
            member = np.searchsorted(edges, chances, side="right")
            keys, groups = edges, range(CHANCE_BINS)
        else:
            column = matrix[:, FEATURE_NAMES.index(by)]
            keys = np.unique(column)
            member = np.searchsorted(keys, column)
            groups = range(len(keys))
        factors = {
            f"{level:g}": [conformal_quantile(scores[member == g], level) if np.any(member == g) else marginal[level]
                           for g in groups]
            for level in LEVELS
        }  # fmt: skip
        groupings.append({"by": by, "edges" if by == CHANCE else "values": keys.tolist(), "factors": factors})
    entry = {
        "scale": {"weights": dict(zip(FEATURE_NAMES, weights.tolist(), strict=True)), "bias": bias, "floor": floor},
        "marginal": {f"{level:g}": value for level, value in marginal.items()},
        "groupings": groupings,
    }
    adaptive = Adaptive.from_entry(entry)
    mean_widths = {level: float(np.mean(adaptive.half_widths(chances, matrix, level))) for level in LEVELS}
    return IntervalTable(mean_widths, DEFAULT_LEVEL, adaptive), entry


def calibration_rows(features: pd.DataFrame, target: np.ndarray, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """All training rows, or a seeded sample of ``CALIBRATION_MAX_ROWS`` of them (in file order)."""
    if len(features) <= CALIBRATION_MAX_ROWS:
        return features, target
    chosen = np.sort(np.random.default_rng(seed).choice(len(features), size=CALIBRATION_MAX_ROWS, replace=False))
    return features.iloc[chosen], target[chosen]


def rows_of(features: pd.DataFrame) -> np.ndarray:
    return features[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)


def coverage(
    table: IntervalTable, chances: np.ndarray, actual: np.ndarray, rows: np.ndarray
) -> dict[str, dict[str, float]]:
    """Share of ``actual`` inside the served interval, and the mean width, per level."""
    result = {}
    for level in sorted(table.half_widths):
        low, high = table.bounds(chances, level, rows)
        result[f"{level:g}"] = {
            "coverage": float(np.mean((actual >= low) & (actual <= high))),
            "mean_width": float(np.mean(high - low)),
        }
    return result


def _outer_fold(
    model: Pipeline,
    features: pd.DataFrame,
    target: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    method: Method,
) -> pd.DataFrame:
    """Calibrate on one outer fold's training rows; the served chance and each level's bounds for its test rows."""
    from sklearn.base import clone

    fitted = clone(model).fit(features.iloc[train], target[train])
    table, _ = calibrate_table(model, features.iloc[train], target[train], seed, method)
    chances = to_chance(fitted.predict(features.iloc[test]))
    frame = pd.DataFrame({"row": features.index[test], "chance": chances, "actual": target[test]})
    for level in LEVELS:
        frame[f"low_{level:g}"], frame[f"high_{level:g}"] = table.bounds(chances, level, rows_of(features.iloc[test]))
    return frame


def measuring_repeats(rows: int, folds: int, repeats: int) -> int:
    """CV repeats for measuring the intervals: at least ``repeats``, and enough that each decile of the
    predicted chance holds ``JUDGED_MIN_PREDICTIONS`` predictions (3 on the vendored 320 rows)."""
    del folds  # every repeat predicts each row once, whatever k is
    needed = int(np.ceil(JUDGED_MIN_PREDICTIONS * CHANCE_BINS / max(rows, 1)))
    return max(repeats, min(needed, 10))


def cross_validated(
    model: Pipeline,
    features: pd.DataFrame,
    target: np.ndarray,
    folds: int,
    repeats: int,
    seed: int,
    jobs: int,
    method: Method = CHOSEN,
) -> pd.DataFrame:
    """Out-of-fold chances and interval bounds of every training row, once per repeat, with the
    features that define the groups."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import RepeatedKFold

    splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    backend = "multiprocessing" if jobs > 1 else "sequential"
    frames = Parallel(n_jobs=jobs, backend=backend)(
        delayed(_outer_fold)(model, features, target, train, test, seed, method)
        for train, test in splitter.split(features)
    )
    frame = pd.concat(frames, ignore_index=True)
    return frame.join(features[list(GROUP_FEATURES)], on="row")


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


GROUP_FEATURES = ("university_rating", "research", "cgpa")
# How the report, the card and the gate split applicants: (name, column, binned into deciles?).
BREAKDOWNS = (
    ("decile of the predicted chance", "chance", True),
    ("university rating", "university_rating", False),
    ("research", "research", False),
    ("decile of CGPA", "cgpa", True),
)
COVERAGE_JUDGED = ("decile of the predicted chance", "university rating", "research")


def group_labels(values: pd.Series, binned: bool, edges: np.ndarray | None = None) -> pd.Series:
    """Group names: deciles as "1".."10" (by rank, or between given ``edges``), values as themselves."""
    if not binned:
        return values.map(lambda v: f"{v:g}")
    if edges is None:
        codes = pd.qcut(values.rank(method="first"), 10, labels=False).astype(int)
    else:
        codes = pd.Series(np.searchsorted(edges, values.to_numpy(), side="right"), index=values.index)
    return (codes + 1).map(str)


def group_table(frame: pd.DataFrame, cgpa_edges: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per group of each breakdown: predictions, distinct applicants, RMSE, bias (predicted minus actual),
    coverage and mean width per level, and whether its coverage is judged (issue 22)."""
    rows = []
    error = frame["chance"] - frame["actual"]
    for name, column, binned in BREAKDOWNS:
        labels = group_labels(frame[column], binned, cgpa_edges if column == "cgpa" else None)
        for label in sorted(labels.unique(), key=float):
            inside = labels == label
            part = frame[inside]
            entry: dict[str, Any] = {
                "breakdown": name,
                "group": label,
                "predictions": int(inside.sum()),
                "applicants": int(part["row"].nunique()) if "row" in part else int(inside.sum()),
                "rmse": float(np.sqrt(np.mean(error[inside] ** 2))),
                "bias": float(np.mean(error[inside])),
                "judged": bool(name in COVERAGE_JUDGED and inside.sum() >= JUDGED_MIN_PREDICTIONS),
            }
            for level in LEVELS:
                low, high = part[f"low_{level:g}"], part[f"high_{level:g}"]
                entry[f"coverage_{level:g}"] = float(((part["actual"] >= low) & (part["actual"] <= high)).mean())
                entry[f"width_{level:g}"] = float((high - low).mean())
            rows.append(entry)
    return rows


def worst_judged(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Per level, the judged group whose coverage is furthest from nominal (what the gate looks at)."""
    result = {}
    for level in LEVELS:
        judged = [g for g in groups if g["judged"]]
        if not judged:
            continue
        worst = max(judged, key=lambda g: abs(g[f"coverage_{level:g}"] - level))
        result[f"{level:g}"] = {
            "breakdown": worst["breakdown"],
            "group": worst["group"],
            "coverage": worst[f"coverage_{level:g}"],
            "predictions": worst["predictions"],
        }
    return result


class Intervals(TypedDict):
    """intervals.json: the numbers served, the default level, and coverage measured three ways."""

    method: str
    half_widths: dict[str, float]  # level (as text, e.g. "0.9") -> mean half-width on the calibration rows
    adaptive: dict[str, Any]  # the scale model and the groups' factors (core.intervals.Adaptive)
    default_level: float
    calibration_rows: int
    training_rows: int
    coverage: dict[str, Any]  # held_out, cv, cv_by_decile, cv_groups, held_out_groups, cv_worst and row counts


def load_intervals(folder: Path) -> Intervals:
    """The intervals CalibrateIntervals wrote into ``folder``."""
    intervals: Intervals = json.loads((folder / INTERVALS_FILE).read_text())
    return intervals


def cgpa_edges(features: pd.DataFrame) -> np.ndarray:
    """The training split's CGPA deciles: the same edges split the CV, held-out and reference rows."""
    return np.asarray(np.quantile(features["cgpa"].to_numpy(dtype=np.float64), np.arange(1, 10) / 10))


def calibrate(
    selection_dir: Path, data_dir: Path, folder: Path, folds: int, repeats: int, seed: int, jobs: int
) -> dict[str, Any]:
    model = load_model(selection_dir)
    all_features, all_target = load_split(data_dir, TRAIN_FILE)
    features, target = calibration_rows(all_features, all_target, seed)
    test_features, test_target = load_split(data_dir, TEST_FILE)
    table, entry = calibrate_table(model, features, target, seed, CHOSEN)
    measuring = measuring_repeats(len(target), folds, repeats)
    out_of_fold = cross_validated(model, features, target, folds, measuring, seed, jobs, CHOSEN)
    out_of_fold.to_csv(folder / OUT_OF_FOLD_FILE, index=False, float_format="%.10g")
    test_chances = to_chance(model.predict(test_features))
    held_out = coverage(table, test_chances, test_target, rows_of(test_features))
    held_frame = pd.DataFrame({"row": test_features.index, "chance": test_chances, "actual": test_target})
    for level in LEVELS:
        held_frame[f"low_{level:g}"], held_frame[f"high_{level:g}"] = table.bounds(
            test_chances, level, rows_of(test_features)
        )
    held_frame = held_frame.join(test_features[list(GROUP_FEATURES)], on="row")
    edges = cgpa_edges(all_features)
    cv_groups = group_table(out_of_fold, edges)
    sampled = (
        f" (a seeded sample of {len(target)} of the {len(all_target)} training rows)"
        if len(target) < len(all_target)
        else ""
    )
    intervals: Intervals = {
        "method": CHOSEN.describe() + sampled,
        "half_widths": {f"{level:g}": width for level, width in table.half_widths.items()},
        "adaptive": entry,
        "default_level": DEFAULT_LEVEL,
        "calibration_rows": len(target),
        "training_rows": len(all_target),
        "coverage": {
            "held_out": held_out,
            "held_out_rows": len(test_target),
            "cv": frame_coverage(out_of_fold),
            "cv_rows": len(out_of_fold),
            "cv_repeats": measuring,
            "cv_by_decile": by_decile(out_of_fold),
            "cv_groups": cv_groups,
            "cv_worst": worst_judged(cv_groups),
            "held_out_groups": group_table(held_frame, edges),
            "cgpa_edges": edges.tolist(),
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
