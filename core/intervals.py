"""Conformal prediction intervals from the half-widths the pipeline calibrated (pipeline/intervals.py).

The pipeline stores, with the model, one half-width per calibrated coverage level (a quantile of
out-of-fold absolute residuals, computed with MAPIE). An interval is then ``chance +- half-width``
clipped to [0, 1]: plain arithmetic on the chance already served, so the service needs no extra
library and an applicant's interval is the same whichever route computed its chance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.artefact import INTERVALS_KEY
from core.contract import TARGET

NO_INTERVAL = ("none", "off", "false")  # not "0": a number asks for a level, and level 0 is not one


class UnknownLevelError(ValueError):
    """A request asked for an interval level the model was not calibrated for (the message lists them)."""


@dataclass(frozen=True)
class IntervalTable:
    """Half-widths by coverage level (e.g. ``{0.9: 0.096}``) and the level served by default."""

    half_widths: dict[float, float]
    default_level: float | None

    @classmethod
    def from_metadata(cls, metadata: Any) -> IntervalTable:
        """From the store metadata's ``intervals`` entry; a model without one has no intervals."""
        entry = (metadata or {}).get(INTERVALS_KEY) or {}
        widths = {round(float(level), 6): float(width) for level, width in (entry.get("half_widths") or {}).items()}
        default = entry.get("default_level")
        return cls(widths, round(float(default), 6) if default is not None and widths else None)

    def level(self, requested: str | None) -> float | None:
        """The level to serve for a request's ``interval`` query value (absent: the default; ``none``: none)."""
        if requested is None or requested.strip() == "":
            return self.default_level
        text = requested.strip().lower()
        if text in NO_INTERVAL:
            return None
        try:
            value = round(float(text), 6)
        except ValueError:
            value = -1.0
        if value not in self.half_widths:
            offered = ", ".join(f"{level:g}" for level in sorted(self.half_widths)) or "none (this model has none)"
            raise UnknownLevelError(
                f"interval must be one of the calibrated levels {offered}, or none; got {requested!r}"
            )
        return value

    def bounds(self, chances: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends for each chance, clipped to [0, 1] (elementwise, so per row)."""
        width = self.half_widths[level]
        chances = np.asarray(chances, dtype=np.float64)
        low = np.clip(chances - width, TARGET.minimum, TARGET.maximum)
        high = np.clip(chances + width, TARGET.minimum, TARGET.maximum)
        return low, high

    def pairs(self, chances: np.ndarray, level: float) -> np.ndarray:
        """An (n, 2) array of [low, high] rows."""
        low, high = self.bounds(chances, level)
        return np.column_stack([low, high])
