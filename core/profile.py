"""A training set's profile, and the population stability index (PSI) of new values against it.

Stored with every registered model (``training_profile.json`` in its folder, so Bentos carry it): per
column, the decile edges and the share of rows between them. The promotion gate compares a new run's
data with the champion's profile (pipeline/gate.py); the service compares its recent inputs with the
served model's (service/monitoring.py). PSI over the profile's own bins: sum over bins of
(new - old) * ln(new / old). The usual reading, which both follow: below 0.1 no shift, 0.1-0.25 a
moderate one, above 0.25 a large one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_DECILES = np.linspace(0.1, 0.9, 9)
_FLOOR = 1e-4  # an empty bin's share, so that ln(new / old) stays finite


def column_profile(values: np.ndarray) -> dict[str, Any]:
    """Distinct decile edges (a 0/1 column has one or two) and the share of values in each bin they make."""
    values = np.asarray(values, dtype=float)
    edges = np.unique(np.quantile(values, _DECILES))
    return {
        "rows": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "edges": [float(edge) for edge in edges],
        "shares": shares(values, edges).tolist(),
    }


def shares(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Share of ``values`` in each bin of ``edges``: (-inf, e0), [e0, e1), ..., [e_last, inf)."""
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(reference: dict[str, Any], values: np.ndarray) -> float:
    """Population stability index of ``values`` against a column profile, over the profile's bins."""
    old = np.clip(np.asarray(reference["shares"], dtype=float), _FLOOR, None)
    new = np.clip(shares(np.asarray(values, dtype=float), reference["edges"]), _FLOOR, None)
    return float(np.sum((new - old) * np.log(new / old)))
