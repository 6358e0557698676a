"""RegisterModel: save the selected model to the BentoML model store with its whole lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import bentoml
import luigi
from luigi.util import inherits

from pipeline.provenance import read_manifest, write_json
from pipeline.selection import SELECTION_FILE, SelectModel
from pipeline.stores import StoreTarget
from pipeline.task import StoreTask
from pipeline.train import estimator_parameters, load_model

MODEL_NAME = "admissions"
LINEAGE_FILE = "lineage.json"  # in the model's folder: every upstream manifest


def collect_lineage(folder: Path) -> list[dict[str, Any]]:
    """The manifests of a task folder and of everything upstream of it, nearest first, each once."""
    chain, seen, queue = [], set(), [folder]
    while queue:
        current = queue.pop(0)
        manifest = read_manifest(current)
        if manifest["task_id"] in seen:
            continue
        seen.add(manifest["task_id"])
        chain.append(manifest)
        queue.extend(Path(record["output"]) for record in manifest["upstream"])
    return chain


def labels_for(manifest: dict[str, Any], selection: dict[str, Any]) -> dict[str, str]:
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


def register(tag: str, selection_dir: Path, manifest: dict[str, Any]) -> bentoml.Model:
    """Save the chosen model with readable metadata; the whole lineage goes into a file beside it."""
    selection = json.loads((selection_dir / SELECTION_FILE).read_text())
    model = load_model(selection_dir)
    short = {key: manifest[key] for key in ("task_family", "task_id", "parameters", "code", "started_at")}
    metadata = {
        "candidate": selection["chosen"],
        "selection_reason": selection["reason"],
        "metrics": selection["metrics"],
        "hyperparameters": estimator_parameters(model),
        "manifest": {**short, "lineage_file": LINEAGE_FILE},
    }
    saved = bentoml.sklearn.save_model(
        tag,
        model,
        labels=labels_for(manifest, selection),
        metadata=store_safe(metadata),
        signatures={"predict": {"batchable": True}},
    )
    stored = bentoml.models.get(saved.tag)  # ``saved`` points at the folder it was written in, not the store
    write_lineage(stored, manifest, selection_dir)
    return stored


def write_lineage(model: bentoml.Model, manifest: dict[str, Any], selection_dir: Path) -> None:
    """``lineage.json`` in the model's folder (so exports and Bentos carry it), unless it is there already."""
    path = Path(model.path) / LINEAGE_FILE
    if path.is_file():
        return
    partial = path.with_name(f".{LINEAGE_FILE}.partial")
    write_json(partial, {"manifest": manifest, "lineage": collect_lineage(selection_dir)})
    partial.replace(path)  # atomic: a killed run leaves no half-written lineage


@inherits(SelectModel)
class RegisterModel(StoreTask):
    """The selected model in the BentoML store, tagged from this task's id (so re-runs are no-ops)."""

    model_name = luigi.Parameter(default=MODEL_NAME, description="name of the model in the BentoML store")

    def requires(self) -> SelectModel:
        return self.clone(SelectModel)

    @property
    def model_tag(self) -> str:
        return f"{self.model_name}:{hashlib.sha256(self.task_id.encode()).hexdigest()[:16]}"

    def output(self) -> StoreTarget:  # type: ignore[override]
        return StoreTarget(self.model_tag, bentoml.models.get)

    def publish(self, manifest: dict[str, Any]) -> None:
        register(self.model_tag, self.input_dir(), manifest)

    def adopt(self, manifest: dict[str, Any]) -> None:
        # A run killed between saving the model and writing its lineage file: write it now.
        model = bentoml.models.get(self.model_tag)
        recorded: dict[str, Any] = dict(model.info.metadata)
        write_lineage(model, recorded["manifest"], self.input_dir())
