"""The feature contract: names, bounds and units of an applicant profile, defined once.

The pipeline validates raw rows with :class:`LabelledApplicant`; the API validates requests with
:class:`Applicant`. Both come from :data:`FEATURES`, so a bound changed here changes both.
This module imports neither BentoML nor Luigi, so either side can use it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model


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

_STRICT = ConfigDict(extra="forbid", strict=True)

Applicant: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Applicant",
    __config__=_STRICT,
    __doc__="One applicant's profile: the seven features the model needs.",
    **{spec.name: (spec.annotation(), ...) for spec in FEATURES},
)

LabelledApplicant: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "LabelledApplicant",
    __base__=Applicant,
    __doc__="A training row: an applicant's features and the chance of admission they were given.",
    **{TARGET.name: (TARGET.annotation(), ...)},
)


def to_chance(predictions: np.ndarray) -> np.ndarray:
    """Model outputs as chances: regressors can stray outside [0, 1], a chance cannot."""
    return np.clip(np.asarray(predictions, dtype=float), TARGET.minimum, TARGET.maximum)
