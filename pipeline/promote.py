"""PromoteModel: the promotion gate after registration. Only a model that passes it is served by default.

The checks follow MLflow's ``MetricThreshold`` (``mlflow.models.MetricThreshold``: a metric, whether
greater is better, an absolute threshold and a tolerated change against a baseline), without MLflow
itself: here the tolerance is how much *worse* than the promoted model a new one may be.

Both models are measured on the new run's data, so the comparison is paired:
- held-out RMSE: the new model's, and the promoted model's predictions of the new held-out split;
- CV RMSE: the new model's repeated k-fold CV, and a fresh copy of the promoted model's pipeline
  (same hyper-parameters) cross-validated on the same folds of the new training split;
- interval coverage: the new model's CV coverage at the default level within a tolerance of nominal.

The first model of a store is promoted. A refused model stays in the store; the task fails with
one sentence with the numbers (the run exits 30); ``--force-promote "reason"`` promotes it anyway and
records the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import luigi
from luigi.util import inherits

from pipeline.data import TEST_FILE, TRAIN_FILE, PrepareData, load_split
from pipeline.errors import PromotionRefusedError
from pipeline.evaluate import cross_validate, scores
from pipeline.intervals import INTERVALS_FILE, CalibrateIntervals
from pipeline.provenance import write_json
from pipeline.register import RegisterModel
from pipeline.report import ReportRun
from pipeline.selection import SELECTION_FILE, SelectModel
from pipeline.task import PipelineTask
from service import promotion
from service.contract import to_chance

DECISION_FILE = "decision.json"


@dataclass(frozen=True)
class MetricThreshold:
    """One check, after ``mlflow.models.MetricThreshold``; ``max_worse`` is the tolerated change against the
    baseline in the bad direction (MLflow's ``min_absolute_change``, with the opposite sign)."""

    metric: str
    greater_is_better: bool
    max_worse: float | None = None  # against the baseline (the promoted model)
    nominal: float | None = None  # for coverage: the value the metric should be near
    tolerance: float | None = None  # ... and by how much it may miss it

    def check(self, candidate: float, baseline: float | None) -> tuple[bool, str]:
        """(passed, a clause with the numbers)."""
        if self.nominal is not None and self.tolerance is not None:
            miss = abs(candidate - self.nominal)
            verdict = "within" if miss <= self.tolerance else "outside"
            return miss <= self.tolerance, (
                f"{self.metric} {candidate:.3f} is {verdict} {self.tolerance:g} of nominal {self.nominal:g}"
            )
        if baseline is None or self.max_worse is None:
            return True, f"{self.metric} {candidate:.4f} (no baseline)"
        worse_by = (baseline - candidate) if self.greater_is_better else (candidate - baseline)
        passed = worse_by <= self.max_worse
        relation = f"worse by {worse_by:.4f}" if worse_by > 0 else f"better by {-worse_by:.4f}"
        return passed, (
            f"{self.metric} {candidate:.4f} vs promoted {baseline:.4f}: {relation} (tolerance {self.max_worse:g})"
        )


def gate(
    thresholds: list[MetricThreshold], candidate: dict[str, float], baseline: dict[str, float]
) -> list[dict[str, Any]]:
    results = []
    for threshold in thresholds:
        passed, sentence = threshold.check(candidate[threshold.metric], baseline.get(threshold.metric))
        results.append(
            {
                "metric": threshold.metric,
                "candidate": candidate[threshold.metric],
                "baseline": baseline.get(threshold.metric),
                "passed": passed,
                "says": sentence,
            }
        )
    return results


def baseline_metrics(promoted: str, data_dir: Path, folds: int, repeats: int, seed: int, jobs: int) -> dict[str, float]:
    """The promoted model measured on this run's data: its held-out RMSE and its pipeline's CV RMSE."""
    model = bentoml.sklearn.load_model(promoted)
    features, target = load_split(data_dir, TRAIN_FILE)
    test_features, test_target = load_split(data_dir, TEST_FILE)
    held_out = scores(test_target, to_chance(model.predict(test_features)))
    cv = cross_validate(model, features, target, folds, repeats, seed, jobs)  # clones: fresh fits, same folds
    return {"held_out_rmse": held_out["rmse"], "cv_rmse": cv["rmse"]["mean"]}


@inherits(RegisterModel)
class PromoteModel(PipelineTask):
    """decision.json: the gate's checks and the outcome; promotes the registered model when it passes."""

    cv_folds: int
    cv_repeats: int
    cv_jobs = luigi.IntParameter(default=2, significant=False, description="processes for the baseline's CV")
    gate_test_rmse_tolerance = luigi.FloatParameter(
        default=0.005, significant=False, description="held-out RMSE a new model may lose against the promoted one"
    )
    gate_cv_rmse_tolerance = luigi.FloatParameter(
        default=0.002, significant=False, description="mean CV RMSE a new model may lose against the promoted one"
    )
    gate_coverage_tolerance = luigi.FloatParameter(
        default=0.05, significant=False, description="how far the CV interval coverage may be from nominal"
    )
    force_promote = luigi.Parameter(
        default="", significant=False, description="promote even if the gate refuses; the reason (recorded)"
    )

    def requires(self) -> dict[str, luigi.Task]:
        return {
            "model": self.clone(RegisterModel),
            "selection": self.clone(SelectModel),
            "intervals": self.clone(CalibrateIntervals),
            "data": self.clone(PrepareData),
            "report": self.clone(ReportRun),  # first, so that a refused model has its report too
        }

    @property
    def model_tag(self) -> str:
        return self.clone(RegisterModel).model_tag

    def thresholds(self, nominal: float) -> list[MetricThreshold]:
        return [
            MetricThreshold("held_out_rmse", greater_is_better=False, max_worse=self.gate_test_rmse_tolerance),
            MetricThreshold("cv_rmse", greater_is_better=False, max_worse=self.gate_cv_rmse_tolerance),
            MetricThreshold(
                "cv_interval_coverage", greater_is_better=True, nominal=nominal, tolerance=self.gate_coverage_tolerance
            ),
        ]

    def produce(self, folder: Path) -> dict[str, Any]:
        tag = str(bentoml.models.get(self.model_tag).tag)
        selection = json.loads((self.input_dir("selection") / SELECTION_FILE).read_text())
        intervals = json.loads((self.input_dir("intervals") / INTERVALS_FILE).read_text())
        level = float(intervals["default_level"])
        candidate = {
            "held_out_rmse": selection["metrics"]["test"]["rmse"],
            "cv_rmse": selection["metrics"]["cv"]["rmse"]["mean"],
            "cv_interval_coverage": intervals["coverage"]["cv"][f"{level:g}"]["coverage"],
        }
        promoted = promotion.promoted_tag(tag.split(":", maxsplit=1)[0])
        baseline: dict[str, float] = {}
        if promoted and promoted != tag:
            data_dir = self.input_dir("data")
            baseline = baseline_metrics(promoted, data_dir, self.cv_folds, self.cv_repeats, self.seed, self.cv_jobs)
        checks = gate(self.thresholds(level), candidate, baseline)
        failed = [check["says"] for check in checks if not check["passed"]]
        decision = {
            "model_tag": tag,
            "previously_promoted": promoted,
            "checks": checks,
            "passed": not failed,
            "forced": bool(failed) and bool(self.force_promote),
            "reason": self.force_promote or None,
        }
        if promoted == tag:
            decision["outcome"] = "already promoted"
        elif promoted is None:
            decision["outcome"] = "promoted: the first model of this store"
        elif failed and not self.force_promote:
            raise PromotionRefusedError(
                f"{tag} was not promoted (it stays in the store; {promoted} stays promoted): "
                f"{'; '.join(failed)}. To promote it anyway: --force-promote 'the reason'"
            )
        else:
            decision["outcome"] = "promoted despite the gate (forced)" if failed else "promoted: passed the gate"
        if promoted != tag:
            details = {key: decision[key] for key in ("forced", "reason", "passed", "previously_promoted")}
            promotion.promote(tag, Path(bentoml.models.get(tag).path), {**details, "checks": checks})
        write_json(folder / DECISION_FILE, decision)
        return {"promotion": {k: decision[k] for k in ("model_tag", "outcome", "passed", "forced", "reason")}}
