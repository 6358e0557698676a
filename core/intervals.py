"""Conformal prediction intervals from the numbers the pipeline calibrated (pipeline/intervals.py).

Two forms, both plain arithmetic on numbers stored with the model, so the service needs no extra
library and an applicant's interval is the same whichever route computed its chance:

- **constant** (models registered before issue 22, and any whose metadata has no ``adaptive`` entry):
  one half-width per level; the interval is ``chance +- half-width`` clipped to [0, 1];
- **adaptive** (normalised, group-conditional): the half-width of a row is
  ``scale(row) x factor(row, level)``, clipped the same way, where

  - ``scale(row) = max(exp(row @ w + b), floor)`` is the expected size of the model's error for that
    applicant (a log-linear model of the out-of-fold absolute residuals, the shape of MAPIE's
    ``ResidualNormalisedScore``);
  - ``factor(row, level)`` is the largest of the conformal quantiles of the normalised residuals of
    the groups the row belongs to (its decile of the predicted chance, its university rating, its
    research), so each group's coverage is calibrated on its own, not only the average.

Every step is elementwise over rows with a fixed order of operations (core.linear.affine_rows), so a
row's interval does not depend on the rows computed with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.artefact import INTERVALS_KEY
from core.contract import FEATURE_NAMES, TARGET
from core.linear import affine_rows

NO_INTERVAL = ("none", "off", "false")  # not "0": a number asks for a level, and level 0 is not one
CHANCE = "chance"  # a grouping by the served chance (bins between edges) rather than by a feature's value


class UnknownLevelError(ValueError):
    """A request asked for an interval level the model was not calibrated for (the message lists them)."""


@dataclass(frozen=True)
class Grouping:
    """One way of splitting applicants into groups, with each group's conformal factor per level.

    ``by`` is a feature name (groups by its exact ``values``) or ``"chance"`` (groups between the
    ``edges`` of the predicted chance: ``len(edges) + 1`` bins). A value the calibration never saw
    gets the marginal factor.
    """

    by: str
    keys: np.ndarray  # the sorted values (a feature) or the inner edges (the chance)
    factors: dict[float, np.ndarray]  # level -> factor per group (per value, or per bin)

    def factor(self, chances: np.ndarray, rows: np.ndarray, level: float, marginal: float) -> np.ndarray:
        factors = self.factors[level]
        if self.by == CHANCE:
            return factors[np.searchsorted(self.keys, chances, side="right")]
        column = rows[:, FEATURE_NAMES.index(self.by)]
        where = np.clip(np.searchsorted(self.keys, column), 0, len(self.keys) - 1)
        return np.where(self.keys[where] == column, factors[where], marginal)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Grouping:
        by = str(entry["by"])
        keys = np.asarray(entry["edges"] if by == CHANCE else entry["values"], dtype=np.float64)
        factors = {
            round(float(level), 6): np.asarray(values, dtype=np.float64) for level, values in entry["factors"].items()
        }
        return cls(by, keys, factors)


@dataclass(frozen=True)
class Adaptive:
    """The numbers of an adaptive interval: the scale model and the groups' factors per level."""

    weights: np.ndarray  # per feature, in contract order (raw units)
    bias: float
    floor: float  # the smallest scale (a residual model never predicts an error of zero)
    marginal: dict[float, float]  # level -> the factor over all calibration rows
    groupings: tuple[Grouping, ...]

    def scale(self, rows: np.ndarray) -> np.ndarray:
        return np.maximum(np.exp(affine_rows(rows, self.weights, self.bias)), self.floor)

    def half_widths(self, chances: np.ndarray, rows: np.ndarray, level: float) -> np.ndarray:
        marginal = self.marginal[level]
        factor = np.full(len(chances), marginal, dtype=np.float64)
        for grouping in self.groupings:
            factor = np.maximum(factor, grouping.factor(chances, rows, level, marginal))
        return self.scale(rows) * factor

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Adaptive:
        scale = entry["scale"]
        marginal = {round(float(level), 6): float(value) for level, value in entry["marginal"].items()}
        groupings = tuple(Grouping.from_entry(grouping) for grouping in entry.get("groupings") or ())
        weights = np.asarray([float(scale["weights"][name]) for name in FEATURE_NAMES], dtype=np.float64)
        return cls(weights, float(scale["bias"]), float(scale["floor"]), marginal, groupings)


@dataclass(frozen=True)
class IntervalTable:
    """Half-widths by coverage level (e.g. ``{0.9: 0.096}``), the level served by default and, for
    models calibrated per group, the :class:`Adaptive` numbers (then ``half_widths`` is their mean
    over the calibration rows, for display only)."""

    half_widths: dict[float, float]
    default_level: float | None
    adaptive: Adaptive | None = None

    @classmethod
    def from_metadata(cls, metadata: Any) -> IntervalTable:
        """From the store metadata's ``intervals`` entry; a model without one has no intervals."""
        entry = (metadata or {}).get(INTERVALS_KEY) or {}
        widths = {round(float(level), 6): float(width) for level, width in (entry.get("half_widths") or {}).items()}
        default = entry.get("default_level")
        adaptive = Adaptive.from_entry(entry["adaptive"]) if entry.get("adaptive") and widths else None
        return cls(widths, round(float(default), 6) if default is not None and widths else None, adaptive)

    @property
    def needs_rows(self) -> bool:
        """Whether an interval depends on the applicant's features, not only on the chance."""
        return self.adaptive is not None

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

    def bounds(
        self, chances: np.ndarray, level: float, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends for each chance, clipped to [0, 1] (elementwise, so per row). ``rows``
        (n, 7 features in contract order) is required when :attr:`needs_rows`."""
        chances = np.asarray(chances, dtype=np.float64)
        if self.adaptive is None:
            width: float | np.ndarray = self.half_widths[level]
        else:
            if rows is None:
                raise ValueError("this model's intervals depend on the applicant's features: pass the rows")
            matrix = np.asarray(rows, dtype=np.float64).reshape(len(chances), len(FEATURE_NAMES))
            width = self.adaptive.half_widths(chances, matrix, level)
        low = np.clip(chances - width, TARGET.minimum, TARGET.maximum)
        high = np.clip(chances + width, TARGET.minimum, TARGET.maximum)
        return low, high

    def pairs(self, chances: np.ndarray, level: float, rows: np.ndarray | None = None) -> np.ndarray:
        """An (n, 2) array of [low, high] rows."""
        low, high = self.bounds(chances, level, rows)
        return np.column_stack([low, high])
