"""The feature contract: names, bounds and units of an applicant profile, defined once.

The pipeline validates raw rows with :class:`LabelledApplicant`; the API validates requests with
:class:`Applicant`. Both come from :data:`FEATURES`, so a bound changed here changes both.
This module imports neither BentoML nor Luigi, so either side can use it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import TypedDict


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


# Request and response models of the API service (the feature models above are its inputs).


class LoginRequest(BaseModel):
    """Credentials for ``POST /login``."""

    model_config = _STRICT
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the token expires")


class Explanation(BaseModel):
    """Feature contributions: ``base_value + sum(contributions) + clip_adjustment == chance``."""

    base_value: float = Field(description="linear: the prediction at the training means; trees: the training mean")
    contributions: dict[str, float] = Field(description="per feature, in chance units (linear: w x (value - mean))")
    clip_adjustment: float = Field(description="chance minus the unclipped model output (0 unless clipped to [0, 1])")


_INTERVAL = "conformal prediction interval [low, high], clipped to [0, 1]; null with ?interval=none"
_LEVEL = "the interval's coverage level (default 0.9; ?interval=0.8 asks another calibrated level)"


class Prediction(BaseModel):
    chance: float = Field(ge=0, le=1, description="predicted chance of admission")
    model_tag: str = Field(description="the model that produced the prediction")
    interval: tuple[float, float] | None = Field(default=None, description=_INTERVAL)
    interval_level: float | None = Field(default=None, description=_LEVEL)
    explanation: Explanation | None = Field(default=None, description="with ?explain=true only")


class BatchPrediction(BaseModel):
    chances: list[float] = Field(description="predicted chances, in the order of the input rows")
    model_tag: str
    intervals: list[tuple[float, float]] | None = Field(default=None, description=_INTERVAL)
    interval_level: float | None = Field(default=None, description=_LEVEL)
    explanations: list[Explanation] | None = Field(default=None, description="with ?explain=true only")


class JobStatus(BaseModel):
    job_id: str
    status: str = Field(description="pending, running, completed or failed")
    rows: int
    model_tag: str | None = None
    error: str | None = Field(default=None, description="why the job failed (failed jobs only)")
    note: str | None = Field(default=None, description="what the job is waiting for, e.g. a model service outage")
    attempts: int = Field(default=0, description="attempts started so far (outages do not count)")
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    next_attempt_at: str | None = Field(default=None, description="when a deferred job is tried again")


# The same fields and rules as Applicant, validated into plain dicts: for 1,000-row batches this took
# a third off validation and conversion (no model instance per row), measured on /predict_batch.
ApplicantRow = TypedDict(  # type: ignore[misc]
    "ApplicantRow", {spec.name: spec.annotation() for spec in FEATURES}
)
ApplicantRow.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]


def batch_request(name: str, max_rows: int) -> type[BaseModel]:
    """A request body ``{"applicants": [ApplicantRow, ...]}`` with 1 .. ``max_rows`` rows."""
    # fail_fast: validation stops at the first bad row, so a huge body of bad rows costs one error, not one per row
    rows = Annotated[list[ApplicantRow], Field(min_length=1, max_length=max_rows, fail_fast=True)]  # type: ignore[valid-type]
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __config__=_STRICT,
        __doc__=f"Between 1 and {max_rows} applicants.",
        applicants=(rows, ...),
    )


_FEATURE_VALUES = itemgetter(*FEATURE_NAMES)


def as_rows(applicants: list[Any]) -> np.ndarray:
    """Validated applicant rows (dicts) as an (n, 7) float array, columns in ``FEATURE_NAMES`` order."""
    return np.array([_FEATURE_VALUES(a) for a in applicants], dtype=np.float64).reshape(-1, len(FEATURE_NAMES))
