"""The gate's group check: a candidate trained where one rating's labels are corrupted is refused against a
sound champion, naming the group and its numbers; a sound retrain passes (no pipeline run: models fitted here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.contract import TARGET, to_chance
from pipeline.data import TRAIN_FILE, load_split, prepare
from pipeline.gate import groups_vs_champion, reference_groups
from pipeline.intervals import cgpa_edges
from pipeline.reference import REFERENCE_FILE
from pipeline.train import build_candidate
from tests.pipeline.corruptions import corrupted
from tests.support.paths import RAW_DATA


def fitted(raw: Path, folder: Path, candidate: str = "linear_regression") -> tuple[object, pd.DataFrame]:
    folder.mkdir(parents=True, exist_ok=True)
    prepare(raw, folder, 0.2, 0.05, 42, folder / "kept.csv")
    features, target = load_split(folder, TRAIN_FILE)
    return build_candidate(candidate, 42).fit(features, target), features


def reference(folder: Path) -> pd.DataFrame:
    features, target = load_split(folder, REFERENCE_FILE)
    return features.assign(**{TARGET.name: target})


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, pd.DataFrame, Path]:
    folder = tmp_path_factory.mktemp("clean")
    model, features = fitted(RAW_DATA, folder)
    return model, features, folder


def check(candidate: object, champion: tuple, tolerance: float = 0.02):  # type: ignore[no-untyped-def]
    model, features, folder = champion
    ref = reference(folder)
    rows = ref.drop(columns=TARGET.name)
    return groups_vs_champion(
        ref[TARGET.name].to_numpy(),
        to_chance(candidate.predict(rows)),  # type: ignore[attr-defined]
        to_chance(model.predict(rows)),
        reference_groups(ref, cgpa_edges(features).tolist()),
        "admissions:champion",
        tolerance,
    )


def test_a_candidate_trained_on_one_ratings_corrupted_labels_is_refused_naming_the_group(
    champion: tuple, tmp_path: Path
) -> None:
    raw = corrupted("one_rating", tmp_path)
    candidate, _ = fitted(raw, tmp_path / "data")
    result = check(candidate, champion)
    assert not result.passed
    assert "university rating 5" in result.says and "RMSE" in result.says and "bias" in result.says
    rating = result.numbers["university rating 5"]
    assert rating["judged"] and rating["rmse"] - rating["champion_rmse"] > 0.02


def test_a_sound_retrain_passes_the_group_check(champion: tuple, tmp_path: Path) -> None:
    ridge, _ = fitted(RAW_DATA, tmp_path, "ridge")  # another sound model of the same data
    result = check(ridge, champion)
    assert result.passed, result.says
    judged = [name for name, n in result.numbers.items() if n["judged"]]
    assert len(judged) >= 10 and all(np.isfinite(result.numbers[name]["rmse"]) for name in judged)
