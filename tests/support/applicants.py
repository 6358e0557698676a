"""Applicants for requests: the README's sample, and valid ones spread over the contract's ranges."""

from __future__ import annotations

import random
from typing import Any

# The README's first prediction: a valid, ordinary applicant.
APPLICANT: dict[str, Any] = {
    "gre_score": 320,
    "toefl_score": 110,
    "university_rating": 4,
    "sop": 4.5,
    "lor": 4.0,
    "cgpa": 9.1,
    "research": 1,
}


def applicant(**overrides: Any) -> dict[str, Any]:
    """The sample applicant, with ``overrides``."""
    return {**APPLICANT, **overrides}


def applicants(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """Valid applicants spread over the contract's ranges."""
    rng = random.Random(seed)
    return [
        applicant(
            gre_score=rng.randint(260, 340),
            toefl_score=rng.randint(0, 120),
            university_rating=rng.randint(1, 5),
            sop=rng.randint(2, 10) / 2,
            lor=rng.randint(2, 10) / 2,
            cgpa=round(rng.uniform(0, 10), 2),
            research=rng.randint(0, 1),
        )
        for _ in range(count)
    ]
