"""The profile of a training set, as stored with every registered model (core/profile.py has the format
and the PSI that compares new values with it)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.profile import column_profile


def profile(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The profile of every column of ``frame`` (features and the label)."""
    return {str(name): column_profile(frame[name].to_numpy()) for name in frame.columns}
