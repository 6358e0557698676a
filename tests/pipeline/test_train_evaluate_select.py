"""TrainModel, EvaluateModel and SelectModel functions on the vendored data, without Luigi."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.contract import FEATURE_NAMES
from pipeline.data import read_raw, split, validate
from pipeline.errors import PipelineError
from pipeline.evaluate import cross_validate, scores
from pipeline.provenance import MANIFEST_NAME, sha256_file, write_json
from pipeline.selection import choose, rank
from pipeline.train import CANDIDATES, MODEL_FILE, build_candidate, estimator_parameters, load_model, save_model
from tests.support.paths import RAW_DATA


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    train, test = split(validate(read_raw(RAW_DATA))[0], 0.2, seed=42)
    features = list(FEATURE_NAMES)
    return train[features], train["chance_of_admit"].to_numpy(), test[features], test["chance_of_admit"].to_numpy()


@pytest.mark.parametrize("name", CANDIDATES)
def test_candidates_are_seeded_and_survive_serialisation(name: str, splits, tmp_path: Path) -> None:
    x_train, y_train, x_test, _ = splits
    first = build_candidate(name, seed=3).fit(x_train, y_train)
    second = build_candidate(name, seed=3).fit(x_train, y_train)
    np.testing.assert_array_equal(first.predict(x_test), second.predict(x_test))
    save_model(first, tmp_path / MODEL_FILE)
    write_json(tmp_path / MANIFEST_NAME, {"outputs": {MODEL_FILE: sha256_file(tmp_path / MODEL_FILE)}})
    np.testing.assert_array_equal(load_model(tmp_path).predict(x_test), first.predict(x_test))
    assert estimator_parameters(first)  # hyper-parameters are recorded


def test_a_model_file_changed_after_its_task_is_refused(splits, tmp_path: Path) -> None:
    x_train, y_train, _, _ = splits
    save_model(build_candidate("ridge", 0).fit(x_train, y_train), tmp_path / MODEL_FILE)
    write_json(tmp_path / MANIFEST_NAME, {"outputs": {MODEL_FILE: sha256_file(tmp_path / MODEL_FILE)}})
    save_model(build_candidate("linear_regression", 0).fit(x_train, y_train), tmp_path / MODEL_FILE)
    with pytest.raises(PipelineError, match="does not match the sha256 in its manifest"):
        load_model(tmp_path)


def test_the_forest_has_500_trees() -> None:
    assert estimator_parameters(build_candidate("random_forest", 0))["randomforestregressor__n_estimators"] == "500"


def test_unknown_candidate_is_refused() -> None:
    with pytest.raises(PipelineError, match="unknown candidate 'svm'"):
        build_candidate("svm", 0)


def test_cross_validation_reports_mean_and_spread(splits) -> None:
    x_train, y_train, _, _ = splits
    result = cross_validate(build_candidate("linear_regression", 0), x_train, y_train, folds=5, repeats=2, seed=1)
    assert result["folds"] == 5
    assert result["repeats"] == 2
    assert 0.7 < result["r2"]["mean"] < 0.9
    assert result["r2"]["std"] > 0
    assert 0 < result["rmse"]["mean"] < 0.1


def test_scores_of_a_perfect_prediction() -> None:
    actual = np.array([0.5, 0.7, 0.9])
    assert scores(actual, actual) == {"r2": 1.0, "rmse": 0.0, "mae": 0.0}


def _metrics(rmse: float, std: float) -> dict:
    cv = {"rmse": {"mean": rmse, "std": std}, "r2": {"mean": 0.8, "std": 0.01}, "mae": {"mean": 0.04, "std": 0.0}}
    return {"cv": {**cv, "folds": 5, "repeats": 2}, "test": {"rmse": rmse, "r2": 0.8, "mae": 0.04}}


def test_selection_prefers_the_lowest_cv_error_when_clearly_better() -> None:
    ranking = rank({"linear_regression": _metrics(0.070, 0.001), "random_forest": _metrics(0.050, 0.001)})
    chosen, reason = choose(ranking)
    assert chosen == "random_forest"
    assert "lowest mean CV RMSE" in reason


def test_selection_tie_break_takes_the_simplest_within_one_standard_error() -> None:
    ranking = rank({"random_forest": _metrics(0.0600, 0.01), "ridge": _metrics(0.0610, 0.01)})
    chosen, reason = choose(ranking)
    assert chosen == "ridge"
    assert "simplest of these is ridge" in reason
