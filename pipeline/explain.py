"""ExplainModel: the selected model's global view, and what the service needs to explain single predictions.

- coefficients in the features' own units (linear models: the change in chance per GRE point, per CGPA
  point, ...; also per standard deviation, to compare features with different units);
- permutation importance on the held-out split (scikit-learn's, any model): how much the held-out
  RMSE grows when one feature's values are shuffled;
- partial dependence of the chance (clipped, as served) on CGPA and GRE over the training data;
- past ``pipeline.scale.IMPORTANCE_MAX_ROWS`` held-out rows and ``PARTIAL_DEPENDENCE_MAX_ROWS`` training
  rows, both on seeded samples of those sizes (recorded in ``samples``, stated in the model card): their
  cost is passes x rows x the model's cost per row: at a million rows, 93.5 CPU s on every row with the
  booster selected, 3.4 s sampled, and far more with the forest (docs/pipeline-scale.md);
- the training means of the features, stored with the model for per-prediction explanations
  (service/explain.py: weight x (value - mean)).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import luigi
import numpy as np
import pandas as pd
from luigi.util import inherits

from core.contract import FEATURE_NAMES, FEATURES, to_chance
from core.linear import affine_form
from pipeline.data import TEST_FILE, TRAIN_FILE, PrepareData, load_split
from pipeline.plots import PLOT_META
from pipeline.provenance import write_json
from pipeline.scale import IMPORTANCE_MAX_ROWS, PARTIAL_DEPENDENCE_MAX_ROWS, sample_rows
from pipeline.selection import SelectModel
from pipeline.task import PipelineTask
from pipeline.train import load_model

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

GLOBAL_FILE, GLOBAL_PLOT = "global.json", "global.png"
PD_FEATURES = ("cgpa", "gre_score")
UNITS = {
    "gre_score": "GRE point",
    "toefl_score": "TOEFL point",
    "university_rating": "rating step",
    "sop": "SOP point",
    "lor": "LOR point",
    "cgpa": "CGPA point (of 10)",
    "research": "research experience (0 -> 1)",
}
_GRID = 21


def coefficients(model: Pipeline, features: pd.DataFrame) -> list[dict[str, Any]] | None:
    """Per-unit and per-standard-deviation effects of a linear model; None for other models."""
    affine = affine_form(model)
    if affine is None:
        return None
    weights, _ = affine
    spread = features.std(ddof=0)
    return [
        {
            "feature": name,
            "per_unit": float(weight),
            "unit": UNITS[name],
            "per_std": float(weight * spread[name]),
        }
        for name, weight in zip(FEATURE_NAMES, weights, strict=True)
    ]


def importances(model: Pipeline, features: pd.DataFrame, target: np.ndarray, seed: int) -> list[dict[str, Any]]:
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model, features, target, scoring="neg_root_mean_squared_error", n_repeats=10, random_state=seed
    )
    return [
        {"feature": name, "rmse_increase": float(mean), "std": float(std)}
        for name, mean, std in zip(FEATURE_NAMES, result.importances_mean, result.importances_std, strict=True)
    ]


def partial_dependence(
    model: Pipeline, features: pd.DataFrame, name: str, over: pd.DataFrame | None = None
) -> dict[str, list[float]]:
    """Mean served chance over the training rows (or the rows ``over``, a sample of them) with ``name`` set
    to each grid value (brute force, so the clipping to [0, 1] is inside the mean, as the service applies
    it). The grid spans 2-98% of ``features``, every training row."""
    spec = next(spec for spec in FEATURES if spec.name == name)
    low, high = features[name].quantile(0.02), features[name].quantile(0.98)
    grid = np.linspace(low, high, _GRID)
    if spec.integer:
        grid = np.unique(np.round(grid))
    means = []
    for value in grid:
        varied = (features if over is None else over).copy()
        varied[name] = value
        means.append(float(to_chance(model.predict(varied)).mean()))
    return {"grid": [float(v) for v in grid], "chance": means}


def plot_global(view: GlobalView, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 3.6), dpi=80)
    axes = figure.subplots(1, 1 + len(PD_FEATURES))
    if view["coefficients"]:
        axes[0].barh([c["feature"] for c in view["coefficients"]], [c["per_std"] for c in view["coefficients"]])
        axes[0].set(title="Effect of +1 std (linear)", xlabel="change in chance")
    else:
        axes[0].barh([i["feature"] for i in view["importances"]], [i["rmse_increase"] for i in view["importances"]])
        axes[0].set(title="Permutation importance (held-out)", xlabel="RMSE increase")
    axes[0].invert_yaxis()
    for axis, name in zip(axes[1:], PD_FEATURES, strict=True):
        curve = view["partial_dependence"][name]
        axis.plot(curve["grid"], curve["chance"], marker=".")
        axis.set(title=f"Partial dependence on {name}", xlabel=name, ylabel="mean predicted chance")
    figure.tight_layout()
    figure.savefig(path, metadata=PLOT_META)


class GlobalView(TypedDict):
    """global.json: how the model behaves overall (coefficients or importances, partial dependence) and
    the training means that per-prediction explanations start from."""

    coefficients: list[dict[str, Any]] | None
    importances: list[dict[str, Any]]
    partial_dependence: dict[str, dict[str, list[float]]]
    feature_means: dict[str, float]
    # "importances", "partial_dependence": {"rows": used, "of": available, "seed": seed} (runs before it: absent)
    samples: NotRequired[dict[str, dict[str, int]]]


def load_global_view(folder: Path) -> GlobalView:
    """The view ExplainModel wrote into ``folder``."""
    view: GlobalView = json.loads((folder / GLOBAL_FILE).read_text())
    return view


def global_view(
    model: Pipeline, features: pd.DataFrame, test_features: pd.DataFrame, test_target: np.ndarray, seed: int
) -> GlobalView:
    """The view of ``model`` from its training and held-out splits; its cost is bounded by pipeline/scale.py."""
    # Bounded at scale (pipeline/scale.py); every row below the bounds, as on the vendored data.
    shuffled, shuffled_target = sample_rows(test_features, test_target, IMPORTANCE_MAX_ROWS, seed)
    varied, _ = sample_rows(features, None, PARTIAL_DEPENDENCE_MAX_ROWS, seed)
    assert shuffled_target is not None
    view: GlobalView = {
        "coefficients": coefficients(model, features),
        "importances": importances(model, shuffled, shuffled_target, seed),
        "partial_dependence": {name: partial_dependence(model, features, name, varied) for name in PD_FEATURES},
        "feature_means": {name: float(features[name].mean()) for name in FEATURE_NAMES},
        "samples": {
            "importances": {"rows": len(shuffled), "of": len(test_features), "seed": seed},
            "partial_dependence": {"rows": len(varied), "of": len(features), "seed": seed},
        },
    }
    return view


def explain(selection_dir: Path, data_dir: Path, folder: Path, seed: int) -> dict[str, Any]:
    model = load_model(selection_dir)
    features, _ = load_split(data_dir, TRAIN_FILE)
    test_features, test_target = load_split(data_dir, TEST_FILE)
    view = global_view(model, features, test_features, test_target, seed)
    write_json(folder / GLOBAL_FILE, view)
    plot_global(view, folder / GLOBAL_PLOT)
    return {}


def embedded_png(path: Path) -> str:
    """A PNG as a data URI, for reports that must open offline from one file."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


@inherits(SelectModel)
class ExplainModel(PipelineTask):
    """global.json (coefficients or importances, partial dependence, training means) and global.png."""

    def requires(self) -> dict[str, luigi.Task]:
        return {"selection": self.clone(SelectModel), "data": self.clone(PrepareData)}

    def produce(self, folder: Path) -> dict[str, Any]:
        return explain(self.input_dir("selection"), self.input_dir("data"), folder, self.seed)
