"""The API's request and response models: what clients send and get back, not the training contract.

The applicant models are built from the feature specs of core/contract.py, so a bound changed there
changes the API's validation too.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import TypedDict

from core.contract import FEATURE_NAMES, FEATURES

_STRICT = ConfigDict(extra="forbid", strict=True)

Applicant: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Applicant",
    __config__=_STRICT,
    __doc__="One applicant's profile: the seven features the model needs.",
    **{spec.name: (spec.annotation(), ...) for spec in FEATURES},
)


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


_PREDICTION_ID = "the prediction's id in the prediction log, for POST /outcomes (null when the log is off)"


class Prediction(BaseModel):
    chance: float = Field(ge=0, le=1, description="predicted chance of admission")
    model_tag: str = Field(description="the model that produced the prediction")
    interval: tuple[float, float] | None = Field(default=None, description=_INTERVAL)
    interval_level: float | None = Field(default=None, description=_LEVEL)
    explanation: Explanation | None = Field(default=None, description="with ?explain=true only")
    prediction_id: str | None = Field(default=None, description=_PREDICTION_ID)


class BatchPrediction(BaseModel):
    chances: list[float] = Field(description="predicted chances, in the order of the input rows")
    model_tag: str
    intervals: list[tuple[float, float]] | None = Field(default=None, description=_INTERVAL)
    interval_level: float | None = Field(default=None, description=_LEVEL)
    explanations: list[Explanation] | None = Field(default=None, description="with ?explain=true only")
    prediction_ids: list[str] | None = Field(default=None, description=_PREDICTION_ID + ", per row")


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
