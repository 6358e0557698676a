"""``python -m pipeline runs`` and ``python -m pipeline diff A B``: the registered runs, side by side.

A run is what it registered: each model in the store carries its run's parameters, metrics and
interval coverage in its metadata (pipeline/register.py), so this works after ``make clean`` too. Runs
that failed before registration have no model and are not listed. ``diff`` is in the spirit of DVC's
``params diff`` / ``metrics diff``: only what differs, A next to B.
"""

from __future__ import annotations

from typing import Any

import bentoml
from bentoml.exceptions import NotFound

from core import aliases
from core.artefact import MODEL_NAME
from pipeline.errors import LineageError

# Parameters every run has but that say nothing about the run's content.
_IGNORED = {"raw_data", "artefacts_dir", "model_name"}
# Parameters runs_table shows in a column of their own, whether or not they vary.
_OWN_COLUMN = {"data_sha256"}


def _metadata(model: bentoml.Model) -> Any:
    return model.info.metadata  # JSON-like values; typed as a union mypy cannot index


def _parameters(model: bentoml.Model) -> dict[str, str]:
    params = dict(_metadata(model).get("manifest", {}).get("parameters", {}))
    return {key: str(value) for key, value in params.items() if key not in _IGNORED}


def metrics_of(model: bentoml.Model) -> dict[str, float]:
    """The flat metrics of a run: CV means, held-out scores, interval coverage at each level."""
    metadata = _metadata(model)
    metrics = metadata.get("metrics") or {}
    flat: dict[str, float] = {}
    for name in ("r2", "rmse", "mae"):
        if name in metrics.get("cv", {}):
            flat[f"cv_{name}"] = float(metrics["cv"][name]["mean"])
        if name in metrics.get("test", {}):
            flat[f"held_out_{name}"] = float(metrics["test"][name])
    coverage = (metadata.get("intervals") or {}).get("coverage") or {}
    for where in ("held_out", "cv"):
        for level, values in (coverage.get(where) or {}).items():
            flat[f"{where}_coverage@{level}"] = float(values["coverage"])
            flat[f"{where}_width@{level}"] = float(values["mean_width"])
    return flat


def find(tag: str) -> bentoml.Model:
    full = tag if ":" in tag else f"{MODEL_NAME}:{tag}"
    try:
        return bentoml.models.get(full)
    except NotFound:
        raise LineageError(
            f"no registered model {full} in this BENTOML_HOME; `python -m pipeline runs` lists them"
        ) from None


def registered(model_name: str) -> list[bentoml.Model]:
    try:
        return list(bentoml.models.list(model_name))
    except NotFound:  # BentoML's answer for a store without any model of that name (or an empty one)
        return []


def runs_table(model_name: str = MODEL_NAME) -> str:
    """One line per registered model, newest first; parameters only where runs differ."""
    listed = registered(model_name)
    if not listed:
        return (
            f"no registered {model_name} models in BENTOML_HOME {aliases.bentoml_home()}; "
            "`make register` makes one (or set BENTOML_HOME to the store that has them)"
        )
    models = sorted(listed, key=lambda m: m.info.creation_time, reverse=True)
    params = [_parameters(m) for m in models]
    varying = sorted(
        {key for p in params for key in p if key not in _OWN_COLUMN and len({q.get(key) for q in params}) > 1}
    )
    promoted = aliases.promoted_tag(model_name)
    header = ["time (UTC)", "model tag", "promoted", "data sha256", "candidate", "CV RMSE", "held-out RMSE"]
    rows = [header + varying]
    for model, p in zip(models, params, strict=True):
        m = metrics_of(model)
        rows.append(
            [
                model.info.creation_time.strftime("%Y-%m-%d %H:%M:%S"),
                str(model.tag),
                "yes" if str(model.tag) == promoted else "no",
                p.get("data_sha256", "?")[:12],
                str(_metadata(model).get("candidate", "?")),
                f"{m['cv_rmse']:.4f}" if "cv_rmse" in m else "-",
                f"{m['held_out_rmse']:.4f}" if "held_out_rmse" in m else "-",
                *(p.get(key, "-")[:16] for key in varying),
            ]
        )
    return _format(rows)


def diff_table(a: str, b: str) -> str:
    """Parameters and metrics that differ between two registered models (tags or versions)."""
    first, second = find(a), find(b)
    rows: list[list[str]] = [["", str(first.tag), str(second.tag), "change"]]
    pa, pb = _parameters(first), _parameters(second)
    for key in sorted(set(pa) | set(pb)):
        if pa.get(key) != pb.get(key):
            rows.append([f"param {key}", pa.get(key, "-"), pb.get(key, "-"), ""])
    ca, cb = str(_metadata(first).get("candidate")), str(_metadata(second).get("candidate"))
    if ca != cb:
        rows.append(["candidate", ca, cb, ""])
    ma, mb = metrics_of(first), metrics_of(second)
    for key in sorted(set(ma) | set(mb)):
        va, vb = ma.get(key), mb.get(key)
        if va != vb:
            change = f"{vb - va:+.4f}" if va is not None and vb is not None else ""
            rows.append([f"metric {key}", _number(va), _number(vb), change])
    if len(rows) == 1:
        return f"{first.tag} and {second.tag} have the same parameters and metrics"
    return _format(rows)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _format(rows: list[list[Any]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )
