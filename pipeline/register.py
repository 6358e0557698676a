"""RegisterModel: save the selected model to the BentoML model store with its whole lineage."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import bentoml
import luigi
from bentoml.exceptions import NotFound

from pipeline.data import PrepareData
from pipeline.evaluate import EvaluateModel
from pipeline.provenance import MANIFEST_NAME, read_manifest, write_json
from pipeline.selection import SELECTION_FILE, SelectModel
from pipeline.task import PipelineTask, _now
from pipeline.train import MODEL_FILE, estimator_parameters, load_model

MODEL_NAME = "admissions"


class BentoModelTarget(luigi.Target):
    """A model in the BentoML store (``BENTOML_HOME``); it exists when the store has its tag."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __str__(self) -> str:
        return self.tag

    def exists(self) -> bool:
        try:
            bentoml.models.get(self.tag)
        except NotFound:
            return False
        return True


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
    selection = json.loads((selection_dir / SELECTION_FILE).read_text())
    model = load_model(selection_dir / MODEL_FILE)
    metadata = {
        "candidate": selection["chosen"],
        "selection_reason": selection["reason"],
        "metrics": selection["metrics"],
        "hyperparameters": estimator_parameters(model),
        "manifest": manifest,
        "lineage": collect_lineage(selection_dir),
    }
    return bentoml.sklearn.save_model(
        tag,
        model,
        labels=labels_for(manifest, selection),
        metadata=store_safe(metadata),
        signatures={"predict": {"batchable": True}},
    )


class RegisterModel(PipelineTask):
    """The selected model in the BentoML store, tagged from this task's id (so re-runs are no-ops)."""

    model_name = luigi.Parameter(default=MODEL_NAME, description="name of the model in the BentoML store")
    candidates = SelectModel.candidates
    test_size = PrepareData.test_size
    max_reject_share = PrepareData.max_reject_share
    cv_folds = EvaluateModel.cv_folds
    cv_repeats = EvaluateModel.cv_repeats

    def requires(self) -> SelectModel:
        return self.clone(SelectModel)

    @property
    def model_tag(self) -> str:
        return f"{self.model_name}:{hashlib.sha256(self.task_id.encode()).hexdigest()[:16]}"

    def output(self) -> BentoModelTarget:  # type: ignore[override]
        return BentoModelTarget(self.model_tag)

    def manifest_dir(self) -> Path:
        """Where a copy of the manifest is kept beside the other tasks' (the store holds the original)."""
        return Path(self.artefacts_dir) / self.get_task_family() / self.task_id

    def run(self) -> None:
        started = _now()
        manifest = self.manifest(None, started, {"model_tag": self.model_tag})
        register(self.model_tag, self.input_dir(), manifest)
        shutil.rmtree(self.manifest_dir(), ignore_errors=True)  # left from a model deleted from the store
        with luigi.LocalTarget(str(self.manifest_dir())).temporary_path() as temporary:
            Path(temporary).mkdir(parents=True)
            write_json(Path(temporary) / MANIFEST_NAME, manifest)
