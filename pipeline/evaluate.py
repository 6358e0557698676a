"""EvaluateModel: repeated k-fold cross-validation on the training split and held-out test metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import luigi
import numpy as np
import pandas as pd
from luigi.util import inherits

from core.contract import to_chance
from pipeline.data import TEST_FILE, TRAIN_FILE, PrepareData, load_split
from pipeline.plots import plot_predictions
from pipeline.provenance import write_json
from pipeline.scale import cv_rows, in_processes
from pipeline.task import PipelineTask
from pipeline.train import PRIORITY, TrainModel, load_model

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

METRICS_FILE, PREDICTIONS_FILE = "metrics.json", "test_predictions.csv"


class Metrics(TypedDict):
    """metrics.json: a candidate's repeated-CV scores on the training split and its held-out scores."""

    candidate: str
    cv: dict[str, Any]  # rmse, r2, ... with their spread over folds
    test: dict[str, float]
    test_prediction_range: list[float]


def load_metrics(folder: Path) -> Metrics:
    """The metrics EvaluateModel wrote into ``folder``."""
    metrics: Metrics = json.loads((folder / METRICS_FILE).read_text())
    return metrics


def scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "r2": float(r2_score(actual, predicted)),
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
    }


def score_fold(
    model: Pipeline, features: pd.DataFrame, target: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray
) -> dict[str, float]:
    """Fit a fresh copy of ``model`` on one fold's training rows and score it on the rest."""
    from sklearn.base import clone

    fitted = clone(model).fit(features.iloc[train_rows], target[train_rows])
    return scores(target[test_rows], to_chance(fitted.predict(features.iloc[test_rows])))


def cross_validate(
    model: Pipeline, features: pd.DataFrame, target: np.ndarray, folds: int, repeats: int, seed: int, jobs: int = 1
) -> dict[str, Any]:
    """Mean and spread of each score over repeated k-fold CV, on predictions clipped to chances.

    Folds run in ``jobs`` processes, this one and forked ones (``pipeline.scale.in_processes``): threads
    do not help (fitting 500 small trees is bound by the GIL) and fork shares the already imported
    libraries. Every fold is seeded, so the scores do not depend on ``jobs``.
    """
    from sklearn.base import clone
    from sklearn.model_selection import RepeatedKFold

    features, target = cv_rows(features, target, seed)  # bounded: past CV_MAX_ROWS rows CV cost stays flat
    splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    unfitted = clone(model)  # what each fold fits; a fitted forest (30 MB) would be pickled to every fold
    per_fold = in_processes(
        score_fold,
        [(unfitted, features, target, train_rows, test_rows) for train_rows, test_rows in splitter.split(features)],
        jobs,
    )
    table = pd.DataFrame(per_fold)
    summary: dict[str, Any] = {
        name: {"mean": float(table[name].mean()), "std": float(table[name].std(ddof=1))} for name in table
    }
    summary["folds"] = folds
    summary["repeats"] = repeats
    summary["per_fold_rmse"] = [float(value) for value in table["rmse"]]  # the spread, for the HTML report
    return summary


def evaluate(
    model_dir: Path, data_dir: Path, folder: Path, candidate: str, folds: int, repeats: int, seed: int, jobs: int = 1
) -> dict[str, Any]:
    model = load_model(model_dir)
    train_features, train_target = load_split(data_dir, TRAIN_FILE)
    # CV first, from its bounded sample: the processes it forks then hold neither the full training split
    # nor the held-out split and its predictions (their pages would count in every forked process).
    cv_features, cv_target = cv_rows(train_features, train_target, seed)
    del train_features, train_target
    cv = cross_validate(model, cv_features, cv_target, folds, repeats, seed, jobs)
    test_features, test_target = load_split(data_dir, TEST_FILE)
    predicted = to_chance(model.predict(test_features))
    metrics: Metrics = {
        "candidate": candidate,
        "cv": cv,
        "test": scores(test_target, predicted),
        "test_prediction_range": [float(predicted.min()), float(predicted.max())],
    }
    write_json(folder / METRICS_FILE, metrics)
    pd.DataFrame({"actual": test_target, "predicted": predicted}, index=test_features.index).to_csv(
        folder / PREDICTIONS_FILE, float_format="%.10g"
    )
    plot_predictions(test_target, predicted, f"{candidate}: held-out test set", folder / "test_predictions.png", seed)
    return {"metrics": metrics}


@inherits(TrainModel)
class EvaluateModel(PipelineTask):
    """metrics.json, test_predictions.csv and a predicted-vs-actual/residuals plot for one candidate."""

    candidate: str  # inherited from TrainModel (declared for type checkers)
    cv_folds = luigi.IntParameter(default=5, description="k of the repeated k-fold cross-validation")
    cv_repeats = luigi.IntParameter(default=2, description="how often the k-fold split is repeated")
    cv_jobs = luigi.IntParameter(
        default=2, significant=False, description="processes for the CV folds (does not change results)"
    )

    @property
    def priority(self) -> int:  # type: ignore[override]
        return PRIORITY.get(self.candidate, 0)

    def requires(self) -> dict[str, luigi.Task]:
        return {"data": self.clone(PrepareData), "model": self.clone(TrainModel)}

    def produce(self, folder: Path) -> dict[str, Any]:
        return evaluate(
            self.input_dir("model"),
            self.input_dir("data"),
            folder,
            self.candidate,
            self.cv_folds,
            self.cv_repeats,
            self.seed,
            self.cv_jobs,
        )
