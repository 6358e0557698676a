"""SelectModel: choose one candidate by cross-validated error, with a stated tie-break, and say why."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, TypedDict

import luigi
import pandas as pd

from pipeline.data import PrepareData
from pipeline.errors import PipelineError
from pipeline.evaluate import EvaluateModel, Metrics, load_metrics
from pipeline.plots import plot_comparison
from pipeline.provenance import write_json
from pipeline.task import PipelineTask
from pipeline.train import CANDIDATES, MODEL_FILE, TrainModel

SELECTION_FILE, REPORT_FILE, COMPARISON_FILE = "selection.json", "report.md", "comparison.png"
RULE = (
    "lowest mean cross-validated RMSE; candidates within one standard error of the best count as tied "
    "and the simplest of them wins (simplicity order: {order})"
)


def rank(metrics: dict[str, Metrics]) -> pd.DataFrame:
    """One row per candidate with its CV and test scores, best CV RMSE first."""
    rows = []
    for name, result in metrics.items():
        cv = result["cv"]
        runs = cv["folds"] * cv["repeats"]
        rows.append(
            {
                "candidate": name,
                "cv_rmse": cv["rmse"]["mean"],
                "cv_rmse_se": cv["rmse"]["std"] / math.sqrt(runs),
                "cv_rmse_std": cv["rmse"]["std"],
                "cv_r2": cv["r2"]["mean"],
                "cv_r2_std": cv["r2"]["std"],
                "cv_mae": cv["mae"]["mean"],
                "test_rmse": result["test"]["rmse"],
                "test_r2": result["test"]["r2"],
                "test_mae": result["test"]["mae"],
                "simplicity": CANDIDATES.index(name),
            }
        )
    return pd.DataFrame(rows).sort_values(["cv_rmse", "simplicity"]).reset_index(drop=True)


def choose(ranking: pd.DataFrame) -> tuple[str, str]:
    """The chosen candidate and a sentence saying why (the one-standard-error rule)."""
    if ranking.empty:
        raise PipelineError("no candidates to choose from")
    best = ranking.iloc[0]
    threshold = best["cv_rmse"] + best["cv_rmse_se"]
    tied = ranking[ranking["cv_rmse"] <= threshold].sort_values("simplicity")
    chosen = tied.iloc[0]
    reason = (
        f"{best['candidate']} has the lowest mean CV RMSE ({best['cv_rmse']:.4f}, standard error "
        f"{best['cv_rmse_se']:.4f}); within one standard error (<= {threshold:.4f}): "
        f"{', '.join(tied['candidate'])}; the simplest of these is {chosen['candidate']}"
    )
    return str(chosen["candidate"]), reason


def report(ranking: pd.DataFrame, chosen: str, reason: str, evaluations: dict[str, Path]) -> str:
    columns = [
        "candidate",
        "cv_r2",
        "cv_r2_std",
        "cv_rmse",
        "cv_rmse_std",
        "cv_mae",
        "test_r2",
        "test_rmse",
        "test_mae",
    ]
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(str(row[c]) if c == "candidate" else f"{row[c]:.4f}" for c in columns) + " |\n"
        for _, row in ranking.iterrows()
    )
    plots = "".join(f"- {name}: `{path / 'test_predictions.png'}`\n" for name, path in evaluations.items())
    return (
        f"# Model selection\n\n**Chosen: {chosen}.** {reason}.\n\n![comparison]({COMPARISON_FILE})\n\n"
        f"Cross-validated scores are repeated k-fold on the training split; test scores are on the held-out split.\n\n"
        f"{header}{body}\nPredicted-vs-actual and residual plots per candidate:\n\n{plots}"
    )


class Selection(TypedDict):
    """selection.json: the chosen candidate, why, the rule, its metrics (metrics.json) and the ranking."""

    chosen: str
    reason: str
    rule: str
    metrics: Metrics
    ranking: list[dict[str, Any]]


def load_selection(folder: Path) -> Selection:
    """The selection SelectModel wrote into ``folder``."""
    selection: Selection = json.loads((folder / SELECTION_FILE).read_text())
    return selection


def select(evaluations: dict[str, Path], models: dict[str, Path], folder: Path) -> dict[str, Any]:
    metrics = {name: load_metrics(path) for name, path in evaluations.items()}
    ranking = rank(metrics)
    chosen, reason = choose(ranking)
    shutil.copyfile(models[chosen] / MODEL_FILE, folder / MODEL_FILE)
    selection: Selection = {
        "chosen": chosen,
        "reason": reason,
        "rule": RULE.format(order=" < ".join(CANDIDATES)),
        "metrics": metrics[chosen],
        "ranking": ranking.to_dict(orient="records"),
    }
    write_json(folder / SELECTION_FILE, selection)
    plot_comparison(ranking, chosen, folder / COMPARISON_FILE)
    (folder / REPORT_FILE).write_text(report(ranking, chosen, reason, evaluations))
    return {"selection": {"chosen": chosen, "reason": reason}}


class SelectModel(PipelineTask):
    """selection.json (choice, reason, ranking), the chosen model.joblib, comparison.png and report.md."""

    candidates = luigi.ListParameter(default=CANDIDATES, description="candidates to train and compare")
    test_size = PrepareData.test_size
    max_reject_share = PrepareData.max_reject_share
    cv_folds = EvaluateModel.cv_folds
    cv_repeats = EvaluateModel.cv_repeats

    def requires(self) -> dict[str, luigi.Task]:
        tasks: dict[str, luigi.Task] = {}
        for name in self.candidates:
            tasks[f"evaluation:{name}"] = self.clone(EvaluateModel, candidate=name)
            tasks[f"model:{name}"] = self.clone(TrainModel, candidate=name)
        return tasks

    def produce(self, folder: Path) -> dict[str, Any]:
        evaluations = {name: self.input_dir(f"evaluation:{name}") for name in self.candidates}
        models = {name: self.input_dir(f"model:{name}") for name in self.candidates}
        return select(evaluations, models, folder)
