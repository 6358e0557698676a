"""The reference set: applicants the promotion gate judges every model on, and no model trains on.

``data/reference.csv`` holds 100 rows of the vendored file, drawn once with a fixed seed and committed
(docs/model-card.md, "The promotion gate"). Its labels come from that file, so no new raw file can
move them: a run on shuffled or inverted labels still faces the true chances here. PrepareData keeps
every raw row whose *features* equal a reference row's out of both splits (by a hash of the feature
values), writes the reference rows beside the splits, and the gate checks again that the training
split holds none of them before it scores anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.contract import FEATURE_NAMES
from pipeline.provenance import PROJECT_ROOT

DEFAULT_REFERENCE = str(PROJECT_ROOT / "data" / "reference.csv")  # found from any working directory
REFERENCE_FILE = "reference.csv"  # in PrepareData's folder: the validated reference rows


def row_keys(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of the feature values (not the label, not the line number): a raw row with
    a reference applicant's profile is the same applicant, whatever label the export gave it."""
    return pd.util.hash_pandas_object(frame[list(FEATURE_NAMES)], index=False).to_numpy()


def without_reference(valid: pd.DataFrame, reference: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``valid`` without the rows whose features are a reference applicant's; and how many were removed."""
    held = np.isin(row_keys(valid), row_keys(reference))
    return valid[~held], int(held.sum())


def overlap(train: pd.DataFrame, reference: pd.DataFrame) -> int:
    """How many training rows have a reference applicant's features (must be 0)."""
    return int(np.isin(row_keys(train), row_keys(reference)).sum())
