"""The feature contract: names, bounds and units of an applicant profile, defined once.

The pipeline validates raw rows against :data:`FEATURES` (pipeline/validation.py); the API builds its
request models from the same specs (service/schemas.py), so a bound changed here changes both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field


@dataclass(frozen=True)
class FeatureSpec:
    """One column of the contract: its bounds, type and (optional) step between valid values."""

    name: str
    raw_name: str
    description: str
    minimum: float
    maximum: float
    integer: bool = False
    step: float | None = None

    def annotation(self) -> Any:
        kind = int if self.integer else float
        constraints = Field(
            ge=self.minimum,
            le=self.maximum,
            multiple_of=self.step,
            allow_inf_nan=None if self.integer else False,
            description=self.description,
        )
        return Annotated[kind, constraints]


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("gre_score", "GRE Score", "GRE total on the revised GRE", 260, 340, integer=True),
    FeatureSpec("toefl_score", "TOEFL Score", "TOEFL iBT total", 0, 120, integer=True),
    FeatureSpec("university_rating", "University Rating", "rating of the undergraduate university", 1, 5, integer=True),
    FeatureSpec("sop", "SOP", "strength of the statement of purpose", 1, 5, step=0.5),
    FeatureSpec("lor", "LOR", "strength of the letters of recommendation", 1, 5, step=0.5),
    FeatureSpec("cgpa", "CGPA", "undergraduate GPA out of 10", 0, 10),
    FeatureSpec("research", "Research", "research experience: 1 yes, 0 no", 0, 1, integer=True),
)
TARGET = FeatureSpec("chance_of_admit", "Chance of Admit", "chance of admission", 0, 1)

FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)


def to_chance(predictions: np.ndarray) -> np.ndarray:
    """Model outputs as chances: regressors can stray outside [0, 1], a chance cannot."""
    return np.clip(np.asarray(predictions, dtype=float), TARGET.minimum, TARGET.maximum)
