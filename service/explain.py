"""Per-prediction feature contributions, computed on request (``?explain=true``), never on the fast path.

- Linear models (the affine form of core/linear.py): exactly ``weight x (value - training mean)``
  in the features' own units; the base value is the prediction at the training means.
- Tree models (random forest, gradient boosting, single trees): each tree's prediction split along the
  path the row takes through it, with scikit-learn's own ``decision_path`` (the path decomposition of
  Saabas; additive by construction, but unlike SHAP it credits features by where they sit in the tree).
  The base value is the training mean at the trees' roots.

Either way ``base_value + sum(contributions)`` is the model's raw output; the served chance is that
clipped to [0, 1], and ``clip_adjustment`` (chance - raw output, 0 unless clipped) closes the sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.artefact import EXPLAINER_KEY
from core.contract import FEATURE_NAMES
from service.errors import InvalidInputError

LINEAR, TREES = "linear: weight x (value - training mean)", "trees: decision-path decomposition (Saabas)"


class ExplanationUnavailableError(InvalidInputError):
    """Explanations were asked for a model this module cannot explain."""


class Explainer:
    """Contributions for (n, 7) rows of one model; built once per model service."""

    def __init__(self, pipeline: Any, affine: tuple[np.ndarray, float] | None, metadata: Any) -> None:
        means = ((metadata or {}).get(EXPLAINER_KEY) or {}).get("feature_means") or {}
        self._linear: tuple[np.ndarray, np.ndarray, float] | None = None
        self._trees: _TreeDecomposition | None = None
        if affine is not None and all(name in means for name in FEATURE_NAMES):
            weights, bias = affine
            mean = np.array([float(means[name]) for name in FEATURE_NAMES])
            base = bias
            for column, weight in enumerate(weights):  # the same order as the affine fast path
                base += mean[column] * weight
            self._linear = (weights, mean, float(base))
            self.method: str | None = LINEAR
        else:
            self._trees = _TreeDecomposition.of(pipeline)
            self.method = TREES if self._trees is not None else None

    def explain(self, rows: np.ndarray, chances: np.ndarray) -> list[dict[str, Any]]:
        """One explanation per row; ``chances`` are the served (clipped) predictions of those rows."""
        matrix = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))
        if self._linear is not None:
            weights, mean, base = self._linear
            parts = (matrix - mean) * weights
            bases = np.full(len(matrix), base)
        elif self._trees is not None:
            bases, parts = self._trees.contributions(matrix)
        else:
            raise ExplanationUnavailableError(
                "explanations are not available for this model: it is neither linear nor trees"
            )
        raw = bases + parts.sum(axis=1)
        # Only a clipped output needs closing: elsewhere chance - raw is the rounding difference between
        # this sum and the served prediction (e.g. -1.1e-16), which would read as a clipped row.
        clipped = (raw < 0.0) | (raw > 1.0)
        adjustments = np.where(clipped, np.asarray(chances, dtype=np.float64) - raw, 0.0)
        return [
            {
                "base_value": float(bases[i]),
                "contributions": dict(zip(FEATURE_NAMES, parts[i].tolist(), strict=True)),
                "clip_adjustment": float(adjustments[i]),
            }
            for i in range(len(matrix))
        ]


class _TreeDecomposition:
    """``prediction = base + sum over features``, from each tree's node values along the row's path."""

    def __init__(self, prefix: Any, trees: list[Any], scale: float, offset: float) -> None:
        self.prefix = prefix  # transformers before the trees (none for this project's tree candidates)
        self.trees = [_tree_parts(tree) for tree in trees]
        self.scale, self.offset = scale, offset

    @classmethod
    def of(cls, pipeline: Any) -> _TreeDecomposition | None:
        from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
        from sklearn.tree import DecisionTreeRegressor

        steps = [step for _, step in getattr(pipeline, "steps", [("model", pipeline)])]
        final, prefix = steps[-1], pipeline[:-1] if len(steps) > 1 else None
        if isinstance(final, RandomForestRegressor | ExtraTreesRegressor):
            return cls(prefix, list(final.estimators_), 1.0 / len(final.estimators_), 0.0)
        if isinstance(final, GradientBoostingRegressor) and final.init_ != "zero":
            offset = float(np.asarray(final.init_.predict(np.zeros((1, final.n_features_in_)))).reshape(-1)[0])
            return cls(prefix, [tree for (tree,) in final.estimators_], float(final.learning_rate), offset)
        if isinstance(final, DecisionTreeRegressor):
            return cls(prefix, [final], 1.0, 0.0)
        return None

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.prefix is not None:
            import pandas as pd

            matrix = np.asarray(self.prefix.transform(pd.DataFrame(matrix, columns=list(FEATURE_NAMES))))
        parts = np.zeros((len(matrix), len(FEATURE_NAMES)))
        base = 0.0
        for tree, (node_parts, root) in self.trees:
            parts += (tree.decision_path(matrix.astype(np.float32)) @ node_parts).toarray()
            base += root
        return np.full(len(matrix), self.offset + self.scale * base), parts * self.scale


def _tree_parts(estimator: Any) -> tuple[Any, tuple[Any, float]]:
    """(estimator, (node x feature matrix of value changes, root value)): entering node n from its parent
    p changes the prediction by value[n] - value[p], credited to the feature p splits on."""
    from scipy.sparse import csr_matrix

    tree = estimator.tree_
    values = tree.value[:, 0, 0].astype(np.float64)
    parent = np.full(tree.node_count, -1)
    internal = np.flatnonzero(tree.children_left >= 0)
    parent[tree.children_left[internal]] = internal
    parent[tree.children_right[internal]] = internal
    nodes = np.flatnonzero(parent >= 0)
    deltas = values[nodes] - values[parent[nodes]]
    matrix = csr_matrix((deltas, (nodes, tree.feature[parent[nodes]])), shape=(tree.node_count, len(FEATURE_NAMES)))
    return estimator, (matrix, float(values[0]))
