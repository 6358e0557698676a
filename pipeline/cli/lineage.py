"""The chain from a registered model (or a Bento) back to the raw file's hash, with every parameter on the way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException, NotFound

from core.artefact import LINEAGE_FILE, MODEL_NAME
from pipeline.errors import LineageError

# Parameters every task carries; printed once at the root instead of at every step.
_SHARED = ("raw_data", "data_sha256", "code_version", "seed", "artefacts_dir")


def model_lineage(tag: str) -> tuple[bentoml.Model, list[dict[str, Any]]]:
    try:
        model = bentoml.models.get(tag)
    except NotFound as exc:
        raise LineageError(
            f"no model {tag!r} (and no Bento of that tag) in the BentoML store; see `bentoml models list`"
        ) from exc
    except BentoMLException as exc:
        raise LineageError(f"{tag!r} is not a valid model tag: {exc}") from exc
    metadata: dict[str, Any] = dict(model.info.metadata)
    lineage_file = Path(model.path) / str(metadata.get("manifest", {}).get("lineage_file", LINEAGE_FILE))
    if lineage_file.is_file():
        recorded = json.loads(lineage_file.read_text())
        return model, [recorded["manifest"], *recorded["lineage"]]
    if "manifest" in metadata and "lineage" in metadata:  # registered before the lineage moved to a file
        return model, [metadata["manifest"], *metadata["lineage"]]
    raise LineageError(f"model {model.tag} was not registered by this pipeline (it has no {LINEAGE_FILE})")


def bento_model_tag(tag: str) -> tuple[str, str] | None:
    """(the Bento's line, the tag of the model it carries), or None when ``tag`` is no Bento."""
    try:
        bento = bentoml.get(tag)
    except (NotFound, BentoMLException):
        return None
    # BentoML 1.4 services list their models per service; older Bentos at the top level.
    found = [*bento.info.models, *(model for service in bento.info.services for model in service.models)]
    models = sorted({str(model.tag) for model in found})
    if len(models) != 1:
        raise LineageError(f"Bento {bento.tag} carries {len(models)} models, not one: {', '.join(models)}")
    return f"Bento {bento.tag} (created {bento.info.creation_time:%Y-%m-%d %H:%M:%S %Z}) carries", models[0]


def describe(manifest: dict[str, Any]) -> list[str]:
    """Lines for one task: its id, own parameters, timing, and what it produced."""
    params = {k: v for k, v in manifest["parameters"].items() if k not in _SHARED}
    lines = [f"{manifest['task_family']}  {manifest['task_id']}"]
    lines += [f"    {name} = {value}" for name, value in sorted(params.items())]
    lines.append(f"    ran {manifest['started_at']} .. {manifest.get('finished_at', '(stored)')}")
    if "rows" in manifest:
        lines.append("    rows: " + ", ".join(f"{k} {v}" for k, v in manifest["rows"].items()))
    if "metrics" in manifest:
        cv, test = manifest["metrics"]["cv"], manifest["metrics"]["test"]
        lines.append(f"    CV R^2 {cv['r2']['mean']:.4f} +- {cv['r2']['std']:.4f}, held-out R^2 {test['r2']:.4f}")
    if "selection" in manifest:
        lines.append(f"    chose {manifest['selection']['chosen']}: {manifest['selection']['reason']}")
    lines += [f"    output {name} sha256 {digest}" for name, digest in sorted(manifest["outputs"].items())]
    return lines


def format_lineage(model: bentoml.Model, chain: list[dict[str, Any]]) -> str:
    root = chain[0]
    params, code = root["parameters"], root["code"]
    dirty = " (uncommitted changes)" if code["dirty"] is True else ""
    lines = [
        f"model {model.tag} (created {model.info.creation_time:%Y-%m-%d %H:%M:%S %Z})",
        f"  raw data     {params['raw_data']}  sha256 {params['data_sha256']}",
        f"  code         version {code['version']}, git commit {code['commit']}{dirty}",
        f"  seed         {params['seed']}",
        "  libraries    " + ", ".join(f"{k} {v}" for k, v in sorted(root["libraries"].items())),
        "",
    ]
    for manifest in chain:
        lines += describe(manifest)
    return "\n".join(lines)


def image_bento_tag(reference: str) -> tuple[str, str] | None:
    """(the image's line, the tag of the Bento it was built from, from its labels), or None when no
    local image has that name (or no engine answers)."""
    from pipeline import container
    from pipeline.package import LABEL

    labels = container.image_labels(reference)  # None without an engine, too
    if labels is None:
        return None
    bento = labels.get(f"{LABEL}.bento")
    if not bento:
        raise LineageError(f"image {reference} was not built by this pipeline (it has no {LABEL}.bento label)")
    revision = labels.get("org.opencontainers.image.revision", "unknown")
    return (
        f"image {reference} (git commit {revision}, data sha256 {labels.get(f'{LABEL}.data-sha256', '?')}) holds",
        bento,
    )


def print_lineage(tag: str) -> None:
    """A model's lineage; for a Bento tag, of the model it carries; for an image, of its Bento's model."""
    if tag.partition(":")[0] == MODEL_NAME:
        print(format_lineage(*model_lineage(tag)))
        return
    bento = bento_model_tag(tag)
    if bento is None:
        image = image_bento_tag(tag)
        if image is None:
            print(format_lineage(*model_lineage(tag)))  # says that nothing has that tag
            return
        print(image[0])
        bento = bento_model_tag(image[1])
        if bento is None:
            raise LineageError(f"image {tag} was built from Bento {image[1]}, which is not in this Bento store")
    line, model_tag = bento
    print(line)
    print(format_lineage(*model_lineage(model_tag)))
