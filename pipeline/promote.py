"""PromoteModel: the promotion gate after registration. Only a model that passes it becomes champion.

Every check is judged on ground the new raw file cannot move (pipeline/gate.py has the checks):
- the **reference set** (pipeline/reference.py): applicants no model trains on, with labels from a
  versioned file. The candidate must clear absolute floors there and, when a champion exists, be no
  worse than the champion there by more than a tolerance;
- the candidate's own **CV** must clear the same floors; its intervals must cover near nominal;
- **behaviour**: the chance may not fall when a feature improves, all else equal;
- **the data against the champion's**: each column against the champion's training profile (PSI), and
  the champion's error on the new labels against its own recorded held-out error (past
  ``pipeline.scale.GATE_MAX_ROWS`` new rows, on a seeded sample of them; the check says so).

The verdict is recorded in the store's alias record (core/aliases.py) and in decision.json:
- passed: the model becomes ``champion``;
- refused only because it did not beat the champion on the reference set (overall, or for a group of
  applicants): it becomes ``challenger``
  (kept for comparison, never served by default);
- refused: nothing moves. The model stays in the store; the report and the card show why; BuildBento
  then stops the run with the refusal's sentence (exit 30). ``--force-promote "reason"`` makes it
  champion anyway and records the reason, also on a later run of the same model.

Each model is judged once. The task is complete only when the store has the model and its verdict, so a
wiped ``BENTOML_HOME`` judges again, and a re-run never moves an alias by itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import bentoml
import luigi
import numpy as np
import pandas as pd
from luigi.util import inherits

from core import aliases
from core.artefact import CARD_FILE, MODEL_NAME, PROFILE_FILE
from core.contract import TARGET, to_chance
from pipeline import alias_moves
from pipeline.card import gate_section
from pipeline.data import TEST_FILE, TRAIN_FILE, PrepareData, load_split
from pipeline.errors import PipelineError
from pipeline.evaluate import scores
from pipeline.gate import (
    Check,
    against_champion,
    behaviour,
    champion_on_new_labels,
    coverage,
    data_shift,
    floors,
    groups_vs_champion,
    reference_groups,
)
from pipeline.intervals import CalibrateIntervals, load_intervals
from pipeline.provenance import write_json
from pipeline.reference import REFERENCE_FILE, overlap
from pipeline.register import RegisterModel
from pipeline.scale import GATE_MAX_ROWS, sample_rows
from pipeline.selection import SelectModel, load_selection
from pipeline.stores import StoreTarget
from pipeline.task import PipelineTask

DECISION_FILE = "decision.json"
PROMOTED, CHALLENGER, REFUSED, FORCED = "promoted", "challenger", "refused", "forced"
# The checks that compare with the champion: failing only these, a model is sound but not better.
AGAINST_THE_CHAMPION = {"reference_vs_champion", "groups_vs_champion"}


def load_frame(folder: Path, name: str) -> pd.DataFrame:
    features, target = load_split(folder, name)
    return features.assign(**{TARGET.name: target})


@inherits(RegisterModel)
class PromoteModel(PipelineTask):
    """decision.json: the gate's checks and verdict; moves the ``champion`` or ``challenger`` alias."""

    gate_min_r2 = luigi.FloatParameter(
        default=0.6, significant=False, description="R^2 a model needs on the reference set and in its own CV"
    )
    gate_max_rmse_ratio = luigi.FloatParameter(
        default=0.75,
        significant=False,
        description="RMSE at most this share of always predicting the training mean (reference set and CV)",
    )
    gate_reference_tolerance = luigi.FloatParameter(
        default=0.005, significant=False, description="reference RMSE a new model may lose against the champion"
    )
    gate_behaviour_tolerance = luigi.FloatParameter(
        default=0.01, significant=False, description="how far a chance may fall when one feature improves"
    )
    gate_max_psi = luigi.FloatParameter(
        default=0.25, significant=False, description="largest PSI of a column against the champion's training data"
    )
    gate_max_label_error_ratio = luigi.FloatParameter(
        default=1.5,
        significant=False,
        description="the champion's RMSE on the new labels, at most this times its own held-out RMSE",
    )
    gate_group_tolerance = luigi.FloatParameter(
        default=0.02,
        significant=False,
        description="RMSE a group of reference applicants (rating, research, CGPA decile) may lose to the champion",
    )
    gate_coverage_tolerance = luigi.FloatParameter(
        default=0.05, significant=False, description="how far the CV interval coverage may fall below nominal"
    )
    force_promote = luigi.Parameter(
        default="", significant=False, description="make the model champion even if the gate refuses; the reason"
    )

    def requires(self) -> dict[str, luigi.Task]:
        return {
            "model": self.clone(RegisterModel),
            "selection": self.clone(SelectModel),
            "intervals": self.clone(CalibrateIntervals),
            "data": self.clone(PrepareData),
        }

    @property
    def model_tag(self) -> str:
        return self.clone(RegisterModel).model_tag

    def complete(self) -> bool:
        """The store is the truth: the model is in it, its verdict is recorded there and decision.json is
        that verdict (artefacts shared by two stores), and a forced promotion asked for is done."""
        if not super().complete() or not StoreTarget(self.model_tag, bentoml.models.get).exists():
            return False
        recorded = aliases.decision(self.model_tag)
        if recorded is None or recorded.get("at") != load_decision(Path(self.output().path)).get("at"):
            return False
        return not self.force_promote or aliases.promoted_tag(MODEL_NAME) == self.model_tag

    def run(self) -> None:
        shutil.rmtree(self.output().path, ignore_errors=True)  # another store's verdict, or one to force past
        super().run()

    def checks(self, champion: str | None) -> list[Check]:
        data_dir = self.input_dir("data")
        train, reference = load_frame(data_dir, TRAIN_FILE), load_frame(data_dir, REFERENCE_FILE)
        if overlapping := overlap(train, reference):
            raise PipelineError(
                f"{overlapping} reference applicant(s) are in the training split; the gate cannot judge"
            )
        model = bentoml.sklearn.load_model(self.model_tag)
        features = reference.drop(columns=TARGET.name)
        actual = reference[TARGET.name].to_numpy()
        on_reference = scores(actual, to_chance(model.predict(features)))
        mean_rmse = scores(actual, np.full_like(actual, train[TARGET.name].mean()))["rmse"]
        selection = load_selection(self.input_dir("selection"))
        cv = selection["metrics"]["cv"]
        intervals = load_intervals(self.input_dir("intervals"))
        level = float(intervals["default_level"])
        limits = (self.gate_min_r2, self.gate_max_rmse_ratio)
        checks = [
            floors(
                "reference_floors",
                "reference set",
                on_reference["r2"],
                on_reference["rmse"],
                mean_rmse,
                *limits,
            ),
            floors(
                "cv_floors", "own CV", cv["r2"]["mean"], cv["rmse"]["mean"], float(train[TARGET.name].std()), *limits
            ),
            behaviour(model, features, self.gate_behaviour_tolerance),
            coverage(intervals["coverage"]["cv"][f"{level:g}"]["coverage"], level, self.gate_coverage_tolerance),
        ]
        if champion and champion != self.model_tag:
            checks += self.against(champion, reference, train, load_frame(data_dir, TEST_FILE), on_reference["rmse"])
            champion_chances = to_chance(bentoml.sklearn.load_model(champion).predict(features))
            edges = intervals["coverage"].get("cgpa_edges") or list(np.quantile(train["cgpa"], np.arange(1, 10) / 10))
            checks.append(
                groups_vs_champion(
                    actual,
                    to_chance(model.predict(features)),
                    champion_chances,
                    reference_groups(reference, edges),
                    champion,
                    self.gate_group_tolerance,
                )
            )
        return checks

    def against(
        self, champion: str, reference: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, candidate_rmse: float
    ) -> list[Check]:
        """The checks against the champion: the reference set, and the new data against its training data."""
        model = bentoml.models.get(champion)
        fitted = bentoml.sklearn.load_model(champion)
        actual = reference[TARGET.name].to_numpy()
        champion_rmse = scores(actual, to_chance(fitted.predict(reference.drop(columns=TARGET.name))))["rmse"]
        checks = [against_champion(candidate_rmse, champion_rmse, champion, self.gate_reference_tolerance)]
        profile_path = Path(model.path) / PROFILE_FILE
        if profile_path.is_file():
            checks.append(data_shift(json.loads(profile_path.read_text()), train, self.gate_max_psi))
        else:
            checks.append(Check("data_shift", True, f"data: not compared ({champion} has no training profile)"))
        metrics: Any = model.info.metadata["metrics"]
        recorded = float(metrics["test"]["rmse"])
        every = pd.concat([train, test])
        new, _ = sample_rows(every, None, GATE_MAX_ROWS, self.seed)  # bounded: the champion may be a forest
        new_rmse = scores(new[TARGET.name].to_numpy(), to_chance(fitted.predict(new.drop(columns=TARGET.name))))["rmse"]
        sampled = (len(new), len(every)) if len(new) < len(every) else None
        checks.append(champion_on_new_labels(new_rmse, recorded, champion, self.gate_max_label_error_ratio, sampled))
        return checks

    def produce(self, folder: Path) -> dict[str, Any]:
        recorded = aliases.decision(self.model_tag)
        forcing = bool(self.force_promote) and aliases.promoted_tag(MODEL_NAME) != self.model_tag
        decision = recorded if recorded is not None and not forcing else self.judge()
        write_json(folder / DECISION_FILE, decision)
        return {"promotion": {key: decision[key] for key in ("model_tag", "verdict", "outcome", "at", "reason")}}

    def judge(self) -> dict[str, Any]:
        """Run the checks, move an alias if the verdict says so, record the verdict in the store."""
        tag = self.model_tag
        champion = aliases.promoted_tag(MODEL_NAME)
        checks = self.checks(champion)
        failed = [check for check in checks if not check.passed]
        by = f"pipeline run (PromoteModel {self.task_id})"
        sentences = [check.says for check in checks]
        if not failed or champion == tag:  # the champion already (a store from before verdicts were kept)
            asked = f" (FORCE_PROMOTE was given: {self.force_promote})" if self.force_promote else ""
            verdict, kind, reason = PROMOTED, "gate", f"passed the promotion gate{asked}"
        elif self.force_promote:
            verdict, kind, reason = FORCED, "forced", self.force_promote
        elif {
            check.name for check in failed
        } <= AGAINST_THE_CHAMPION:  # sound, just not better (overall or for a group)
            verdict, kind, reason = CHALLENGER, "gate", "passed the gate's own checks but not the champion's"
        else:
            verdict, kind, reason = REFUSED, "", ""
        decision: dict[str, Any] = {
            "model_tag": tag,
            "champion_before": champion,
            "verdict": verdict,
            "checks": [check.as_dict() for check in checks],
            "failed": [check.says for check in failed],
            "at": alias_moves.now(),
            "by": by,
            "reason": self.force_promote or None,
        }
        if failed and not self.force_promote:
            keeper = f"{champion} stays champion" if champion and champion != tag else "nothing is served from it"
            decision["refusal"] = (
                f"{tag} was not promoted (it stays in the store{', as challenger' if verdict == CHALLENGER else ''}; "
                f"{keeper}): {'; '.join(check.says for check in failed)}. "
                "To promote it anyway: FORCE_PROMOTE='the reason' (make) or --force-promote 'the reason'"
            )
        model_folder = Path(bentoml.models.get(tag).path)
        if champion == tag:
            decision["outcome"] = "already champion"
        elif verdict in (PROMOTED, FORCED):
            alias_moves.move(
                tag, aliases.CHAMPION, kind=kind, reason=reason, by=by, checks=sentences, model_folder=model_folder
            )
            first = "the first model of this store, " if champion is None else ""
            decision["outcome"] = (
                f"champion: {first}{'forced past the gate' if verdict == FORCED else 'passed the gate'}"
            )
        elif verdict == CHALLENGER:
            alias_moves.move(tag, aliases.CHALLENGER, kind=kind, reason=reason, by=by, checks=sentences)
            decision["outcome"] = f"challenger: passed its own checks, not the champion's ({champion} stays champion)"
        else:
            decision["outcome"] = "refused"
        alias_moves.record_decision(tag, decision)
        write_card_gate(model_folder, decision)
        return decision


def write_card_gate(model_folder: Path, decision: dict[str, Any]) -> None:
    """The model card gets the gate's checks (replacing an earlier verdict's section), atomically."""
    card = model_folder / CARD_FILE
    if not card.is_file():
        return
    text = card.read_text().split(GATE_MARK)[0].rstrip() + "\n\n" + GATE_MARK + "\n" + gate_section(decision)
    partial = model_folder / f".{CARD_FILE}.partial"
    partial.write_text(text)
    partial.replace(card)


GATE_MARK = "<!-- the promotion gate's verdict (written by PromoteModel) -->"


def load_decision(folder: Path) -> dict[str, Any]:
    """PromoteModel's decision.json."""
    decision: dict[str, Any] = json.loads((folder / DECISION_FILE).read_text())
    return decision
