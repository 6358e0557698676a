"""The few lines that end every run: what ran, what was reused, the data, the choice and where things are."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import luigi

from pipeline.data import REJECTS_FILE
from pipeline.provenance import MANIFEST_NAME
from pipeline.selection import REPORT_FILE, load_selection
from pipeline.task import StoreTask

_ORDER = (
    "PrepareData",
    "TrainModel",
    "EvaluateModel",
    "SelectModel",
    "CalibrateIntervals",
    "ExplainModel",
    "RegisterModel",
    "PromoteModel",
    "ReportRun",
    "BuildBento",
    "Containerize",
)


def every_task(root: luigi.Task) -> list[luigi.Task]:
    """``root`` and everything upstream of it, each once."""
    seen: dict[str, luigi.Task] = {}
    queue = [root]
    while queue:
        task = queue.pop()
        if task.task_id not in seen:
            seen[task.task_id] = task
            queue.extend(luigi.task.flatten(task.requires()))
    return list(seen.values())


def manifest_of(task: luigi.Task) -> dict[str, Any] | None:
    folder = task.manifest_dir() if isinstance(task, StoreTask) else Path(task.output().path)
    path = folder / MANIFEST_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _families(names: list[str]) -> str:
    counts = Counter(names)
    ordered = sorted(counts, key=lambda name: _ORDER.index(name) if name in _ORDER else len(_ORDER))
    return ", ".join(name if counts[name] == 1 else f"{name} x{counts[name]}" for name in ordered) or "nothing"


def summarise(root: luigi.Task, started: str) -> str:
    """The run's summary; ``started`` (ISO time, UTC) separates this run's work from earlier runs'."""
    ran: list[str] = []
    reused: list[str] = []
    failed: list[str] = []
    blocked: list[str] = []
    manifests: dict[str, tuple[luigi.Task, dict[str, Any]]] = {}
    for task in every_task(root):
        family, manifest = task.get_task_family(), manifest_of(task)
        if manifest is None:  # its inputs were there, so it failed (or was interrupted); else it waited
            inputs_done = all(manifest_of(upstream) for upstream in luigi.task.flatten(task.requires()))
            (failed if inputs_done else blocked).append(family)
            continue
        manifests[family] = (task, manifest)
        is_new = manifest["started_at"] >= started and not manifest.get("already_in_store")
        (ran if is_new else reused).append(family)
    lines = ["Pipeline summary", f"  ran:      {_families(ran)}", f"  reused:   {_families(reused)}"]
    if failed:
        lines.append(f"  failed:   {_families(failed)} (the error is above)")
    if blocked:
        lines.append(f"  blocked:  {_families(blocked)} (waiting for a failed task)")
    lines += _data_lines(manifests)
    lines += _selection_lines(manifests)
    if "ReportRun" in manifests:
        lines.append(
            f"  html:     {Path(manifests['ReportRun'][0].output().path) / manifests['ReportRun'][1]['report']}"
        )
    for family, label in (("RegisterModel", "model"), ("BuildBento", "Bento")):
        if family in manifests:
            lines.append(f"  {label + ':':<9} {manifests[family][1]['tag']}")
        if family == "RegisterModel" and "PromoteModel" in manifests:
            verdict = _verdict(manifests["PromoteModel"][1]["promotion"])
            lines.append(f"  gate:     {verdict['outcome']} ({verdict['at']})")
        elif family == "RegisterModel" and "PromoteModel" in failed:
            lines.append("  gate:     could not judge (the error is above); the model stays in the store")
        if family == "RegisterModel" and family in manifests:
            lines.append(f"  champion: {_champion(manifests[family][1]['tag'])}")
    if "Containerize" in manifests:
        lines.append(f"  image:    {manifests['Containerize'][1].get('image', '(see image.json)')}")
    return "\n".join(lines)


def _data_lines(manifests: dict[str, tuple[luigi.Task, dict[str, Any]]]) -> list[str]:
    if "PrepareData" not in manifests:
        return []
    task, manifest = manifests["PrepareData"]
    rows = manifest["rows"]
    line = f"  data:     {rows['valid']} of {rows['raw']} rows valid ({rows['train']} train, {rows['test']} test"
    held = rows.get("held_for_reference", 0)
    line += f", {held} kept out as the gate's reference applicants)" if held else ")"
    if rows["rejected"]:
        line += f"; {rows['rejected']} rejected, reasons in {Path(task.output().path) / REJECTS_FILE}"
    return [line]


def _selection_lines(manifests: dict[str, tuple[luigi.Task, dict[str, Any]]]) -> list[str]:
    if "SelectModel" not in manifests:
        return []
    task, _ = manifests["SelectModel"]
    folder = Path(task.output().path)
    selection = load_selection(folder)
    cv, test = selection["metrics"]["cv"], selection["metrics"]["test"]
    return [
        f"  selected: {selection['chosen']}: CV RMSE {cv['rmse']['mean']:.4f} +- {cv['rmse']['std']:.4f}, "
        f"CV R^2 {cv['r2']['mean']:.3f}; held-out RMSE {test['rmse']:.4f}, R^2 {test['r2']:.3f}",
        f"  report:   {folder / REPORT_FILE}",
    ]


def _verdict(written: dict[str, Any]) -> dict[str, Any]:
    """The gate's verdict on the run's model as the store records it (the truth), else as written."""
    from core import aliases

    try:
        return aliases.decision(written["model_tag"]) or written
    except (OSError, ValueError, KeyError):
        return written


def _champion(run_model: str) -> str:
    """The store's champion now, whatever this run did: what `make serve` serves."""
    from core import aliases

    try:
        champion = aliases.promoted_tag(run_model.split(":", maxsplit=1)[0])
    except (OSError, ValueError, KeyError) as exc:
        return f"unknown (the alias record cannot be read: {exc})"
    if champion is None:
        return "none yet (`make serve` serves the newest registered model)"
    mine = " (this run's model)" if champion == run_model else ""
    return f"{champion}{mine}; served by `make serve`"
