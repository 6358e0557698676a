"""TrainModel: fit one candidate scikit-learn pipeline on the training split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import luigi
import skops.io
from sklearn.base import RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.data import TRAIN_FILE, PrepareData, load_split
from pipeline.errors import PipelineError
from pipeline.task import PipelineTask

MODEL_FILE = "model.skops"
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def _scaled(regressor: RegressorMixin) -> Pipeline:
    return make_pipeline(StandardScaler(), regressor)


# Each candidate is a function of the seed, so a candidate is fully defined by its name, the seed
# and the code version (which is part of every task id).
CANDIDATES: dict[str, Callable[[int], Pipeline]] = {
    "linear_regression": lambda seed: _scaled(LinearRegression()),
    "ridge": lambda seed: _scaled(Ridge(alpha=1.0)),
    # 500 trees as in the original challenge; n_jobs does not change the fitted forest.
    "random_forest": lambda seed: make_pipeline(
        RandomForestRegressor(n_estimators=500, min_samples_leaf=2, random_state=seed, n_jobs=-1)
    ),
    "gradient_boosting": lambda seed: make_pipeline(
        GradientBoostingRegressor(n_estimators=200, learning_rate=0.05, max_depth=3, subsample=0.8, random_state=seed)
    ),
}


def build_candidate(name: str, seed: int) -> Pipeline:
    if name not in CANDIDATES:
        raise PipelineError(f"unknown candidate {name!r}; choose from {', '.join(CANDIDATES)}")
    return CANDIDATES[name](seed)


def estimator_parameters(model: Pipeline) -> dict[str, str]:
    """Every hyper-parameter of the pipeline's steps, as strings (for manifests and metadata)."""
    return {name: repr(value) for name, value in model.get_params(deep=True).items() if "__" in name}


def save_model(model: Pipeline, path: Path) -> None:
    skops.io.dump(model, path)


def load_model(path: Path) -> Pipeline:
    # Beyond the types skops trusts by default, only tree node storage: these files are the
    # pipeline's own outputs (their hashes are in the manifests), never user uploads.
    model = skops.io.load(path, trusted=TRUSTED_TYPES)
    if not isinstance(model, Pipeline):
        raise PipelineError(f"{path} does not hold a scikit-learn Pipeline")
    return model


class TrainModel(PipelineTask):
    """One fitted candidate: model.skops plus its hyper-parameters in the manifest."""

    candidate = luigi.ChoiceParameter(choices=list(CANDIDATES), description="which candidate to train")
    test_size = PrepareData.test_size
    max_reject_share = PrepareData.max_reject_share

    def requires(self) -> PrepareData:
        return self.clone(PrepareData)

    def produce(self, folder: Path) -> dict[str, Any]:
        features, target = load_split(self.input_dir(), TRAIN_FILE)
        model = build_candidate(self.candidate, self.seed).fit(features, target)
        save_model(model, folder / MODEL_FILE)
        return {"candidate": self.candidate, "hyperparameters": estimator_parameters(model)}
