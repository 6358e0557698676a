"""Which registered model is promoted: a small record beside BentoML's model store.

``$BENTOML_HOME/promotions/<model name>.json`` holds the promoted tag, when it was promoted, and every
promotion before it. The pipeline's gate (pipeline/promote.py) writes it; the service reads it to
serve the promoted model by default and to say so at ``GET /model``. BentoML's store has no mutable
labels or aliases, hence a file of our own. A promoted model also gets ``promotion.json`` in its own
folder, so a Bento (which copies the folder) still knows when its model was promoted.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODEL_RECORD = "promotion.json"  # in a promoted model's folder


def bentoml_home() -> Path:
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get())


def record_path(model_name: str, home: Path | None = None) -> Path:
    return (home or bentoml_home()) / "promotions" / f"{model_name}.json"


def read(model_name: str, home: Path | None = None) -> dict[str, Any] | None:
    """The promotion record, or None when nothing was ever promoted in this store."""
    path = record_path(model_name, home)
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return record


def promoted_tag(model_name: str, home: Path | None = None) -> str | None:
    record = read(model_name, home)
    return str(record["promoted"]) if record else None


def default_tag(configured: str, env: Any = os.environ) -> str:
    """The model to serve: ``configured`` (settings.model_tag), except that its default, the latest
    registration, gives way to the promoted model when this store has one and no tag was asked for."""
    from service.settings import DEFAULT_MODEL_TAG

    if configured != DEFAULT_MODEL_TAG or env.get("ADMISSIONS_MODEL_TAG", "").strip():
        return configured
    try:
        return promoted_tag(configured.split(":", maxsplit=1)[0]) or configured
    except (OSError, ValueError):  # an unreadable record: serve what the settings say
        return configured


def promote(tag: str, model_folder: Path, details: dict[str, Any], home: Path | None = None) -> dict[str, Any]:
    """Make ``tag`` the promoted model; ``details`` (gate numbers, forced, reason) go into the history."""
    name = tag.split(":", maxsplit=1)[0]
    path = record_path(name, home)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"tag": tag, "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"), **details}
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pipelines promoting at once: one history, both entries
        record = read(name, home) or {"model": name, "history": []}
        record.update(promoted=tag, promoted_at=entry["promoted_at"])
        record["history"].append(entry)
        _write_atomically(path, record)
    _write_atomically(model_folder / MODEL_RECORD, entry)
    return entry


def status(tag: str, model_folder: Path | None, home: Path | None = None) -> dict[str, Any]:
    """What ``GET /model`` says about promotion: is ``tag`` the promoted model, and since when."""
    name = tag.split(":", maxsplit=1)[0]
    try:
        record = read(name, home)
    except (OSError, ValueError):
        record = None
    own: dict[str, Any] = {}
    if model_folder is not None:
        try:
            own = json.loads((model_folder / MODEL_RECORD).read_text())
        except (OSError, ValueError):
            own = {}
    if record is None:  # e.g. inside a Bento: no store record, only the model's own
        return {
            "promoted": None,
            "promoted_at": own.get("promoted_at"),
            "currently_promoted": None,
            "note": "no promotion record in this model store; promoted_at is when this model was promoted, if ever",
        }
    entries = [entry for entry in record.get("history", []) if entry.get("tag") == tag]
    last = entries[-1] if entries else {}
    return {
        "promoted": record.get("promoted") == tag,
        "promoted_at": last.get("promoted_at"),
        "currently_promoted": record.get("promoted"),
        "forced": last.get("forced"),
    }


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
