"""Which interval method? Every candidate measured the same way on the vendored data (issue 22).

For each method: repeated k-fold CV on the training split (5 folds x 3 repeats, seed 42, the
pipeline's CalibrateIntervals measurement): each outer fold's intervals are calibrated on that fold's
training rows only and scored on its test rows; then the held-out split with the method calibrated on
the whole training split. Reported per method and level: marginal coverage, the worst judged group's
coverage (deciles of the predicted chance, university rating 1-5, research 0/1; groups of at least 80
predictions), how many judged groups are more than 5 points from nominal, and the mean width at 90%
against today's method.

Methods: the pipeline's own calibration (pipeline/intervals.py) with its switches (today's constant
half-width; Mondrian by groups; a normalised score; both), and MAPIE 1.6's own estimators for the
methods the pipeline cannot serve from plain numbers as they are (split conformal with
``ResidualNormalisedScore``, cross-conformalised quantile regression with linear quantile regressors),
scored on MAPIE's own intervals.

    .tox/dev/bin/python bench/interval_methods.py [--candidate linear_regression] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.contract import FEATURE_NAMES, to_chance  # noqa: E402
from core.intervals import CHANCE  # noqa: E402
from pipeline.data import TEST_FILE, TRAIN_FILE, load_split, prepare  # noqa: E402
from pipeline.intervals import (  # noqa: E402
    BASELINE,
    CHOSEN,
    GROUP_FEATURES,
    GROUPINGS,
    LEVELS,
    Method,
    calibrate_table,
    group_table,
    rows_of,
)
from pipeline.train import build_candidate  # noqa: E402

RAW = ROOT / "data" / "Admission_Predict_Ver1.1.csv"
FOLDS, REPEATS, SEED, TOLERANCE = 5, 3, 42, 0.05

# A calibrator takes (model, train features, train target) and answers bounds(features, level) ->
# (chance, low, high) for other rows.
Calibrator = Callable[[Any, pd.DataFrame, np.ndarray], Callable[[pd.DataFrame, float], tuple[np.ndarray, ...]]]


def pipeline_method(method: Method) -> Calibrator:
    def calibrate(model: Any, features: pd.DataFrame, target: np.ndarray) -> Any:
        from sklearn.base import clone

        fitted = clone(model).fit(features, target)
        table, _ = calibrate_table(model, features, target, SEED, method)

        def bounds(rows: pd.DataFrame, level: float) -> tuple[np.ndarray, ...]:
            chances = to_chance(fitted.predict(rows))
            return (chances, *table.bounds(chances, level, rows_of(rows)))

        return bounds

    return calibrate


def mapie_base(model: Any, features: pd.DataFrame, target: np.ndarray) -> Any:
    """Today's code: MAPIE CrossConformalRegressor, method base, absolute residuals."""
    from mapie.regression import CrossConformalRegressor
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    conformal = CrossConformalRegressor(
        clone(model), confidence_level=list(LEVELS), method="base", cv=KFold(5, shuffle=True, random_state=SEED)
    )
    conformal.fit_conformalize(features, target)
    return _mapie_bounds(conformal)


def mapie_normalised_split(model: Any, features: pd.DataFrame, target: np.ndarray) -> Any:
    """MAPIE SplitConformalRegressor with ResidualNormalisedScore (linear residual model on the features):
    the model fits on 60% of the rows, the residual model and the quantile share the other 40%."""
    from mapie.conformity_scores import ResidualNormalisedScore
    from mapie.regression import SplitConformalRegressor
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    fit_x, cal_x, fit_y, cal_y = train_test_split(features, target, test_size=0.4, random_state=SEED)
    conformal = SplitConformalRegressor(
        clone(model),
        confidence_level=list(LEVELS),
        conformity_score=ResidualNormalisedScore(random_state=SEED, split_size=0.3),
        prefit=False,
    )
    conformal.fit(fit_x, fit_y).conformalize(cal_x, cal_y)
    return _mapie_bounds(conformal)


def mapie_cqr(model: Any, features: pd.DataFrame, target: np.ndarray) -> Any:
    """MAPIE CrossConformalizedQuantileRegressor (base) with linear quantile regressors: one per level
    (each level needs its own pair of quantile models)."""
    from mapie.regression import CrossConformalizedQuantileRegressor
    from sklearn.base import clone
    from sklearn.linear_model import QuantileRegressor
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    per_level = {}
    for level in LEVELS:
        conformal = CrossConformalizedQuantileRegressor(
            make_pipeline(StandardScaler(), QuantileRegressor(alpha=0.0, solver="highs")),
            confidence_level=level,
            method="base",
            cv=KFold(5, shuffle=True, random_state=SEED),
            central_estimator=clone(model),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conformal.fit_conformalize(features, target)
        per_level[level] = conformal

    def bounds(rows: pd.DataFrame, level: float) -> tuple[np.ndarray, ...]:
        centre, intervals = per_level[level].predict_interval(rows)
        return to_chance(centre), *(np.clip(intervals[:, i, 0], 0, 1) for i in (0, 1))

    return bounds


def _mapie_bounds(conformal: Any) -> Any:
    def bounds(rows: pd.DataFrame, level: float) -> tuple[np.ndarray, ...]:
        centre, intervals = conformal.predict_interval(rows)
        i = LEVELS.index(level)
        return to_chance(centre), *(np.clip(intervals[:, j, i], 0, 1) for j in (0, 1))

    return bounds


METHODS: dict[str, Calibrator] = {
    "today: MAPIE cross-conformal base (constant width)": mapie_base,
    "same, pipeline arithmetic": pipeline_method(BASELINE),
    "Mondrian: decile of the chance": pipeline_method(Method("none", (CHANCE,))),
    "Mondrian: decile, rating, research (max)": pipeline_method(Method("none", GROUPINGS)),
    "normalised score (log-linear scale)": pipeline_method(Method("features", ())),
    "normalised + Mondrian: decile": pipeline_method(Method("features", (CHANCE,))),
    "normalised + Mondrian: decile, rating, research (max)": pipeline_method(Method("features", GROUPINGS)),
    "normalised + Mondrian: rating (chosen)": pipeline_method(CHOSEN),
    "MAPIE split + ResidualNormalisedScore": mapie_normalised_split,
    "MAPIE CQR (linear quantiles, cross base)": mapie_cqr,
}


def frame_of(rows: pd.DataFrame, actual: np.ndarray, bounds: Any) -> pd.DataFrame:
    frame = pd.DataFrame({"row": rows.index, "actual": actual})
    for level in LEVELS:
        chance, low, high = bounds(rows, level)
        frame["chance"], frame[f"low_{level:g}"], frame[f"high_{level:g}"] = chance, low, high
    return frame.join(rows[list(GROUP_FEATURES)], on="row")


def summary(frame: pd.DataFrame) -> dict[str, Any]:
    groups = group_table(frame)
    judged = [g for g in groups if g["judged"]]
    result: dict[str, Any] = {"judged_groups": len(judged)}
    for level in LEVELS:
        key = f"{level:g}"
        inside = (frame["actual"] >= frame[f"low_{key}"]) & (frame["actual"] <= frame[f"high_{key}"])
        worst = min(judged, key=lambda g: g[f"coverage_{key}"]) if judged else None
        result[key] = {
            "coverage": float(inside.mean()),
            "mean_width": float((frame[f"high_{key}"] - frame[f"low_{key}"]).mean()),
            "lowest_group": f"{worst['breakdown']} {worst['group']}: {worst[f'coverage_{key}']:.3f}" if worst else "",
            "highest_group": max(g[f"coverage_{key}"] for g in judged) if judged else None,
            "groups_outside": [
                f"{g['breakdown']} {g['group']} ({g[f'coverage_{key}']:.3f})"
                for g in judged
                if abs(g[f"coverage_{key}"] - level) > TOLERANCE + 1e-9
            ],
        }
    width = (frame["high_0.9"] - frame["low_0.9"]).to_numpy()
    error = np.abs(frame["actual"] - frame["chance"]).to_numpy()
    result["width_error_correlation"] = float(np.corrcoef(width, error)[0, 1]) if width.std() > 0 else 0.0
    return result


def measure(candidate: str) -> dict[str, Any]:
    from sklearn.model_selection import RepeatedKFold

    with tempfile.TemporaryDirectory() as tmp:
        prepare(RAW, Path(tmp), 0.2, 0.05, SEED, Path(tmp) / "kept.csv")
        features, target = load_split(Path(tmp), TRAIN_FILE)
        test_features, test_target = load_split(Path(tmp), TEST_FILE)
    features, test_features = features[list(FEATURE_NAMES)], test_features[list(FEATURE_NAMES)]
    model = build_candidate(candidate, SEED, len(features))
    results = {}
    for name, calibrator in METHODS.items():
        frames = []
        for train, test in RepeatedKFold(n_splits=FOLDS, n_repeats=REPEATS, random_state=SEED).split(features):
            bounds = calibrator(model, features.iloc[train], target[train])
            frames.append(frame_of(features.iloc[test], target[test], bounds))
        cv = summary(pd.concat(frames, ignore_index=True))
        held = summary(frame_of(test_features, test_target, calibrator(model, features, target)))
        results[name] = {"cv": cv, "held_out": held}
        print(f"... {name}", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", default="linear_regression")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = measure(args.candidate)
    today = results[next(iter(METHODS))]["cv"]["0.9"]["mean_width"]
    print(
        "| method | CV coverage 80/90/95 | lowest judged group at 90% | judged groups > 5 pts off (80/90/95) "
        "| mean width 90% (vs today) | width~|error| corr. | held-out coverage 80/90/95 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, result in results.items():
        cv, held = result["cv"], result["held_out"]
        coverages = "/".join(f"{cv[f'{lv:g}']['coverage']:.1%}" for lv in LEVELS)
        off = "/".join(str(len(cv[f"{lv:g}"]["groups_outside"])) for lv in LEVELS)
        width = cv["0.9"]["mean_width"]
        held_cov = "/".join(f"{held[f'{lv:g}']['coverage']:.1%}" for lv in LEVELS)
        print(
            f"| {name} | {coverages} | {cv['0.9']['lowest_group']} | {off} of {cv['judged_groups']} "
            f"| {width:.3f} ({width / today - 1:+.0%}) | {cv['width_error_correlation']:.2f} | {held_cov} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
