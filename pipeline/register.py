"""RegisterModel: save the selected model to the BentoML model store with its whole lineage."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import bentoml
import luigi
from luigi.util import inherits

from core.artefact import CARD_FILE, EXPLAINER_KEY, INTERVALS_KEY, LINEAGE_FILE, MODEL_NAME, PROFILE_FILE
from core.contract import TARGET
from pipeline.card import model_card
from pipeline.data import TRAIN_FILE, PrepareData, load_split
from pipeline.explain import ExplainModel, load_global_view
from pipeline.intervals import CalibrateIntervals, load_intervals
from pipeline.profile import profile
from pipeline.provenance import read_manifest, write_json
from pipeline.selection import Selection, SelectModel, load_selection
from pipeline.stores import StoreTarget
from pipeline.task import StoreTask
from pipeline.train import estimator_parameters, load_model


def collect_lineage(*folders: Path) -> list[dict[str, Any]]:
    """The manifests of task folders and of everything upstream of them, nearest first, each once."""
    chain, seen, queue = [], set(), list(folders)
    while queue:
        current = queue.pop(0)
        manifest = read_manifest(current)
        if manifest["task_id"] in seen:
            continue
        seen.add(manifest["task_id"])
        chain.append(manifest)
        queue.extend(Path(record["output"]) for record in manifest["upstream"])
    return chain


def labels_for(manifest: dict[str, Any], selection: Selection) -> dict[str, str]:
    """Store labels (strings only) that let `bentoml models list` trace a model to its run."""
    params = manifest["parameters"]
    return {
        "candidate": selection["chosen"],
        "data_sha256": params["data_sha256"][:12],
        "code_version": params["code_version"],
        "seed": params["seed"],
        "pipeline": "admissions-luigi",
    }


def store_safe(value: Any) -> Any:
    """The store takes str/int/float/bool/list/dict only: None becomes "null"; the rest via JSON."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return {str(key): store_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [store_safe(item) for item in value]
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


_LONG = (
    *("per_fold_rmse", "cv_by_decile", "held_out_rows", "cv_rows"),
    *("cv_groups", "cv_worst", "held_out_groups", "cgpa_edges"),
)


def readable(value: Any) -> Any:
    """Without the per-fold and per-decile lists: `bentoml models get` stays short (they are in artefacts/)."""
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items() if k not in _LONG}
    return value


def register(tag: str, inputs: dict[str, Path], manifest: dict[str, Any]) -> bentoml.Model:
    """Save the chosen model with readable metadata (intervals and explainer numbers included); the
    whole lineage and the model card go into files beside it."""
    selection = load_selection(inputs["selection"])
    intervals = load_intervals(inputs["intervals"])
    view = load_global_view(inputs["explanation"])
    model = load_model(inputs["selection"])
    short = {key: manifest[key] for key in ("task_family", "task_id", "parameters", "code", "started_at")}
    metadata = {
        "candidate": selection["chosen"],
        "selection_reason": selection["reason"],
        "metrics": readable(selection["metrics"]),
        "hyperparameters": estimator_parameters(model),
        INTERVALS_KEY: {
            key: readable(intervals[key]) for key in ("half_widths", "default_level", "adaptive", "coverage")
        },
        EXPLAINER_KEY: {"feature_means": view["feature_means"]},
        "manifest": {**short, "lineage_file": LINEAGE_FILE, "card_file": CARD_FILE},
    }
    saved = bentoml.sklearn.save_model(
        tag,
        model,
        labels=labels_for(manifest, selection),
        metadata=store_safe(metadata),
        signatures={"predict": {"batchable": True}},
    )
    stored = bentoml.models.get(saved.tag)  # ``saved`` points at the folder it was written in, not the store
    write_extras(stored, manifest, inputs)
    return stored


def write_extras(model: bentoml.Model, manifest: dict[str, Any], inputs: dict[str, Path]) -> None:
    """``lineage.json``, ``training_profile.json`` and ``model_card.md`` in the model's folder (so exports
    and Bentos carry them), unless they are there already; each written atomically, so a killed run leaves
    none half-written."""
    folder = Path(model.path)
    if not (folder / LINEAGE_FILE).is_file():
        lineage = {"manifest": manifest, "lineage": collect_lineage(*inputs.values())}
        partial = folder / f".{LINEAGE_FILE}.partial"
        write_json(partial, lineage)
        partial.replace(folder / LINEAGE_FILE)
    if not (folder / PROFILE_FILE).is_file():  # what the gate (and the service) compare new data with
        features, target = load_split(inputs["data"], TRAIN_FILE)
        partial = folder / f".{PROFILE_FILE}.partial"
        write_json(partial, profile(features.assign(**{TARGET.name: target})))
        partial.replace(folder / PROFILE_FILE)
    if not (folder / CARD_FILE).is_file():
        card = model_card(
            str(model.tag),
            manifest,
            load_selection(inputs["selection"]),
            load_intervals(inputs["intervals"]),
            load_global_view(inputs["explanation"]),
            read_manifest(inputs["data"]),
        )
        partial = folder / f".{CARD_FILE}.partial"
        partial.write_text(card)
        partial.replace(folder / CARD_FILE)


@inherits(SelectModel)
class RegisterModel(StoreTask):
    """The selected model in the BentoML store, tagged from this task's id (so re-runs are no-ops)."""

    model_name = luigi.Parameter(default=MODEL_NAME, description="name of the model in the BentoML store")

    def requires(self) -> dict[str, luigi.Task]:
        return {
            "selection": self.clone(SelectModel),
            "intervals": self.clone(CalibrateIntervals),
            "explanation": self.clone(ExplainModel),
            "data": self.clone(PrepareData),
        }

    def inputs(self) -> dict[str, Path]:
        return {name: self.input_dir(name) for name in ("selection", "intervals", "explanation", "data")}

    @property
    def model_tag(self) -> str:
        return f"{self.model_name}:{hashlib.sha256(self.task_id.encode()).hexdigest()[:16]}"

    def output(self) -> StoreTarget:  # type: ignore[override]
        return StoreTarget(self.model_tag, bentoml.models.get)

    def publish(self, manifest: dict[str, Any]) -> None:
        register(self.model_tag, self.inputs(), manifest)

    def adopt(self, manifest: dict[str, Any]) -> None:
        # A run killed between saving the model and writing its lineage file or card: write them now.
        model = bentoml.models.get(self.model_tag)
        recorded: dict[str, Any] = dict(model.info.metadata)
        write_extras(model, recorded["manifest"], self.inputs())
