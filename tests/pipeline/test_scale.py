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


# --- The steps after selection (issue 22): seeded samples past their bounds, every row below them ---


def test_a_sample_is_seeded_in_file_order_and_of_the_bound() -> None:
    assert scale.sample_positions(100, 100, seed=1) is None  # at the bound: every row, untouched
    chosen = scale.sample_positions(1000, 100, seed=1)
    assert chosen is not None and len(chosen) == 100 and len(set(chosen)) == 100
    assert (np.diff(chosen) > 0).all() and chosen.max() < 1000
    np.testing.assert_array_equal(chosen, scale.sample_positions(1000, 100, seed=1))
    assert not np.array_equal(chosen, scale.sample_positions(1000, 100, seed=2))


class CountingModel:
    """A fitted pipeline that records how many rows each predict call is given."""

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self.model, self.rows = model, []  # type: list[int]

    def fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self

    def predict(self, features):  # type: ignore[no-untyped-def]
        self.rows.append(len(features))
        return self.model.predict(features)

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.model, name)


@pytest.fixture
def trained(training):  # type: ignore[no-untyped-def]
    x_train, y_train, x_test = training
    _, test_rows = split(validate(read_raw(RAW_DATA))[0], 0.2, seed=42)
    model = build_candidate("gradient_boosting", seed=0).fit(x_train, y_train)
    return model, x_train, x_test, test_rows["chance_of_admit"].to_numpy()


def test_the_global_view_past_its_bounds_predicts_on_seeded_samples(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import explain

    model, x_train, x_test, y_test = trained
    monkeypatch.setattr(explain, "IMPORTANCE_MAX_ROWS", 30)
    monkeypatch.setattr(explain, "PARTIAL_DEPENDENCE_MAX_ROWS", 40)
    counting = CountingModel(model)
    view = explain.global_view(counting, x_train, x_test, y_test, seed=3)  # type: ignore[arg-type]
    assert max(counting.rows) == 40  # no pass over every training or held-out row
    assert set(counting.rows) == {30, 40}
    assert view["samples"] == {
        "importances": {"rows": 30, "of": len(x_test), "seed": 3},
        "partial_dependence": {"rows": 40, "of": len(x_train), "seed": 3},
    }
    assert view == explain.global_view(model, x_train, x_test, y_test, seed=3)  # seeded: the same twice
    every = explain.global_view(model, x_train, x_test, y_test, seed=3)
    monkeypatch.setattr(explain, "IMPORTANCE_MAX_ROWS", 10**6)
    monkeypatch.setattr(explain, "PARTIAL_DEPENDENCE_MAX_ROWS", 10**6)
    unbounded = explain.global_view(model, x_train, x_test, y_test, seed=3)
    assert unbounded["importances"] != every["importances"]
    # the grid comes from every training row either way; only the averaging rows are sampled
    assert unbounded["partial_dependence"]["cgpa"]["grid"] == every["partial_dependence"]["cgpa"]["grid"]
    assert unbounded["samples"]["importances"] == {"rows": len(x_test), "of": len(x_test), "seed": 3}


def test_the_card_states_a_sample_and_says_nothing_without_one() -> None:
    from pipeline.card import _global_lines

    importances = [{"feature": "cgpa", "rmse_increase": 0.05, "std": 0.004}]
    sampled = {
        "importances": {"rows": 5000, "of": 194223, "seed": 42},
        "partial_dependence": {"rows": 2000, "of": 776891, "seed": 42},
    }
    text = _global_lines({"coefficients": None, "importances": importances, "samples": sampled})  # type: ignore[typeddict-item]
    assert "held-out split; a seeded sample of 5,000 of the 194,223 held-out rows (seed 42)" in text
    assert "averaged over a seeded sample of 2,000 of the 776,891 training rows (seed 42)" in text
    every = {name: {"rows": 80, "of": 80, "seed": 42} for name in sampled}
    for view in ({"samples": every}, {}):  # every row used, or a global.json from before samples
        text = _global_lines({"coefficients": None, "importances": importances, **view})  # type: ignore[typeddict-item]
        assert "sample" not in text and "Permutation importance (held-out split):" in text


def test_the_gates_label_check_says_when_it_used_a_sample() -> None:
    from pipeline.gate import champion_on_new_labels

    check = champion_on_new_labels(0.06, 0.05, "admissions:c", 1.5, sampled=(20_000, 970_000))
    assert "on a seeded sample of 20,000 of the 970,000 new rows" in check.says
    assert check.numbers["rows"] == 20_000 and check.passed
    assert "sample" not in champion_on_new_labels(0.06, 0.05, "admissions:c", 1.5).says


def test_a_prediction_plot_past_its_bound_is_drawn_from_a_seeded_sample(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pipeline.plots import plot_predictions

    rng = np.random.default_rng(0)
    actual, predicted = rng.random(300), rng.random(300)
    plot_predictions(actual, predicted, "t", tmp_path / "every.png", seed=1)
    monkeypatch.setattr(scale, "PLOT_MAX_POINTS", 50)
    for name in ("a.png", "b.png"):
        plot_predictions(actual, predicted, "t", tmp_path / name, seed=1)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "every.png").read_bytes()


def _square_and_pid(value: int) -> tuple[int, int]:
    import os

    return value * value, os.getpid()


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_in_processes_keeps_the_order_and_works_in_the_caller_too(jobs: int) -> None:
    import os

    results = scale.in_processes(_square_and_pid, [(value,) for value in range(7)], jobs)
    assert [square for square, _ in results] == [value * value for value in range(7)]
    pids = [pid for _, pid in results]
    assert pids[0] == os.getpid()  # the caller takes every jobs-th call instead of waiting
    assert set(pids[::jobs]) == {os.getpid()}
    assert len(set(pids)) == 1 if jobs == 1 else 2 <= len(set(pids)) <= jobs  # a pool hands calls out as it likes


def test_cv_scores_do_not_depend_on_the_processes(training) -> None:
    x_train, y_train, _ = training
    model = build_candidate("ridge", 0)
    assert cross_validate(model, x_train, y_train, 5, 2, 7, jobs=1) == cross_validate(
        model, x_train, y_train, 5, 2, 7, jobs=2
    )
