"""Copies of the vendored data as a careless export would make them: the cases the promotion gate refuses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tests.support.paths import RAW_DATA

LABEL = "Chance of Admit "  # as the vendored header spells it


def _shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame[LABEL] = rng.permutation(frame[LABEL].to_numpy())
    return frame


def _half_shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = rng.choice(len(frame), len(frame) // 2, replace=False)
    frame.loc[rows, LABEL] = rng.permutation(frame.loc[rows, LABEL].to_numpy())
    return frame


def _complement(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame[LABEL] = (1 - frame[LABEL]).round(2)  # "chance of rejection" exported under the same name
    return frame


def _percent_twice(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame[LABEL] = frame[LABEL] / 100  # a percentage converted to a share twice: 0.92 -> 0.0092
    return frame


def _off_by_one(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frame[LABEL] = np.roll(frame[LABEL].to_numpy(), 1)  # a join that slipped by one row
    return frame


def _top_half(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.sort_values(LABEL).iloc[len(frame) // 2 :]  # an export filtered to the likelier half


def _one_rating(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = frame["University Rating"] == 5  # one rating's labels exported as "chance of rejection"
    frame.loc[rows, LABEL] = (1 - frame.loc[rows, LABEL]).round(2)
    return frame


CORRUPTIONS: dict[str, Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]] = {
    "shuffled": _shuffled,
    "half_shuffled": _half_shuffled,
    "complement": _complement,
    "percent_twice": _percent_twice,
    "off_by_one": _off_by_one,
    "top_half": _top_half,
    "one_rating": _one_rating,
}


def corrupted(name: str, folder: Path, seed: int = 7) -> Path:
    """The vendored file with corruption ``name`` applied, written to ``folder``."""
    frame = CORRUPTIONS[name](pd.read_csv(RAW_DATA), np.random.default_rng(seed))
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path
