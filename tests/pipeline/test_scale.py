"""Bounded candidates and CV past pipeline.scale.CV_MAX_ROWS, exercised on small data with small bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.contract import FEATURE_NAMES
from pipeline import scale, train
from pipeline.data import read_raw, split, validate
from pipeline.evaluate import cross_validate
from pipeline.train import CANDIDATES, build_candidate, estimator_parameters
from tests.support.paths import RAW_DATA


@pytest.fixture(scope="module")
def training() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    train_rows, test_rows = split(validate(read_raw(RAW_DATA))[0], 0.2, seed=42)
    features = list(FEATURE_NAMES)
    return train_rows[features], train_rows["chance_of_admit"].to_numpy(), test_rows[features]


@pytest.fixture
def small_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vendored 400 training rows count as 'at scale': CV on 200, forest trees on 50, booster on 120."""
    monkeypatch.setattr(scale, "CV_MAX_ROWS", 200)
    monkeypatch.setattr(train, "FOREST_MAX_SAMPLES", 50)
    monkeypatch.setattr(train, "BOOSTING_MAX_SAMPLES", 120)


@pytest.mark.parametrize("name", CANDIDATES)
def test_below_the_bound_nothing_changes(name: str) -> None:
    assert estimator_parameters(build_candidate(name, 1, rows=scale.CV_MAX_ROWS)) == estimator_parameters(
        build_candidate(name, 1)
    )


@pytest.mark.usefixtures("small_bounds")
@pytest.mark.parametrize("name", ["random_forest", "gradient_boosting"])
def test_bounded_candidates_train_identically_twice(name: str, training) -> None:
    x_train, y_train, x_test = training
    first = build_candidate(name, seed=3, rows=len(x_train)).fit(x_train, y_train)
    second = build_candidate(name, seed=3, rows=len(x_train)).fit(x_train, y_train)
    np.testing.assert_array_equal(first.predict(x_test), second.predict(x_test))
    unbounded = build_candidate(name, seed=3).fit(x_train, y_train)
    assert not np.array_equal(first.predict(x_test), unbounded.predict(x_test))


@pytest.mark.usefixtures("small_bounds")
def test_the_forest_trees_see_at_most_the_bound(training) -> None:
    x_train, y_train, _ = training
    forest = build_candidate("random_forest", seed=0, rows=len(x_train)).fit(x_train, y_train)[-1]
    assert len(forest.estimators_) == 500
    assert max(tree.tree_.weighted_n_node_samples[0] for tree in forest.estimators_) == 50  # bootstrap draws


@pytest.mark.usefixtures("small_bounds")
def test_the_booster_fits_on_a_sample_of_the_bound(training, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    x_train, y_train, _ = training
    seen: list[int] = []
    fit = GradientBoostingRegressor.fit

    def counting_fit(self, features, target, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(len(features))  # the rows it passes over, not just those with weight
        return fit(self, features, target, *args, **kwargs)

    monkeypatch.setattr(GradientBoostingRegressor, "fit", counting_fit)
    bagged = build_candidate("gradient_boosting", seed=0, rows=len(x_train)).fit(x_train, y_train)[-1]
    assert seen == [120]
    assert bagged.estimators_[0][-1].n_estimators == 200


@pytest.mark.usefixtures("small_bounds")
def test_cv_past_the_bound_uses_a_seeded_sample(training) -> None:
    x_train, y_train, _ = training
    rows, target = scale.cv_rows(x_train, y_train, seed=5)
    assert len(rows) == 200
    assert rows.index.is_monotonic_increasing
    np.testing.assert_array_equal(target, y_train[x_train.index.get_indexer(rows.index)])
    assert scale.cv_rows(x_train, y_train, seed=5)[0].index.equals(rows.index)
    assert not scale.cv_rows(x_train, y_train, seed=6)[0].index.equals(rows.index)
    model = build_candidate("linear_regression", 0)
    on_sample = cross_validate(model, x_train, y_train, folds=5, repeats=1, seed=5)
    assert on_sample == cross_validate(model, rows, target, folds=5, repeats=1, seed=5)


def test_cv_below_the_bound_uses_every_row(training) -> None:
    x_train, y_train, _ = training
    rows, target = scale.cv_rows(x_train, y_train, seed=5)
    assert rows is x_train
    assert target is y_train
