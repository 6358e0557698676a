"""The promotion gate's checks and the alias record, in-process (the real runs: test_promotion.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import aliases
from core.contract import FEATURE_NAMES, TARGET
from core.profile import column_profile, psi
from pipeline import alias_moves, gate
from pipeline.data import load_reference
from pipeline.profile import profile
from pipeline.reference import overlap, row_keys, without_reference
from tests.support.paths import ROOT

REFERENCE = ROOT / "data" / "reference.csv"


class Linear:
    """A stand-in model: a linear score with the given weight per feature."""

    def __init__(self, **weights: float) -> None:
        self.weights = weights

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return 0.5 + sum(frame[name].to_numpy(dtype=float) * w for name, w in self.weights.items())


def applicants() -> pd.DataFrame:
    return load_reference(REFERENCE)[list(FEATURE_NAMES)]


def test_behaviour_refuses_a_model_whose_chance_falls_when_cgpa_improves() -> None:
    check = gate.behaviour(Linear(cgpa=-0.08, gre_score=0.001), applicants(), tolerance=0.01)
    assert not check.passed
    assert "falls by up to 0.020 when cgpa rises by 0.25" in check.says and "broken for cgpa" in check.says
    fine = gate.behaviour(Linear(cgpa=0.02, research=0.02, sop=-0.001), applicants(), tolerance=0.01)
    assert fine.passed and "largest fall 0.0005, when sop rises by 0.5" in fine.says


def test_behaviour_compares_research_0_with_1_and_stays_within_the_contract() -> None:
    check = gate.behaviour(Linear(research=-0.05), applicants(), tolerance=0.01)
    assert not check.passed and "research goes from 0 to 1" in check.says
    before, after = gate.improved(applicants(), "gre_score")
    assert after["gre_score"].max() <= 340 and (after["gre_score"] - before["gre_score"] == 5).all()


def test_floors_need_both_r2_and_an_rmse_well_below_the_means() -> None:
    assert gate.floors("f", "reference set", 0.8, 0.06, 0.14, 0.6, 0.75).passed
    low = gate.floors("f", "reference set", 0.5, 0.06, 0.14, 0.6, 0.75)
    assert not low.passed and "R^2 0.500 (at least 0.6)" in low.says
    near_mean = gate.floors("f", "own CV", 0.65, 0.12, 0.14, 0.6, 0.75)
    assert not near_mean.passed and "0.86 x that of predicting the training mean" in near_mean.says


def test_psi_is_zero_for_the_same_data_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(8.5, 0.6, 2000)
    reference = column_profile(values)
    assert psi(reference, values) < 1e-9
    assert psi(reference, rng.normal(8.5, 0.6, 2000)) < 0.05  # a fresh sample of the same distribution
    assert psi(reference, values - 1.0) > 1.0  # a CGPA one point lower
    binary = column_profile(np.array([0, 1] * 50))
    assert psi(binary, np.array([0, 1] * 50)) < 1e-9 and psi(binary, np.zeros(100)) > 1.0


def test_data_shift_names_the_columns_that_moved() -> None:
    frame = load_reference(REFERENCE)
    check = gate.data_shift(profile(frame), frame.assign(cgpa=frame["cgpa"] - 1), max_psi=0.25)
    assert not check.passed and "differ from the champion's in cgpa (PSI" in check.says
    assert "gre_score" not in check.says.split("; at most")[0]
    assert gate.data_shift(profile(frame), frame, max_psi=0.25).passed


def test_reference_rows_are_kept_out_by_their_features_whatever_their_label() -> None:
    reference = load_reference(REFERENCE)
    relabelled = reference.assign(**{TARGET.name: 1 - reference[TARGET.name]})
    mixed = pd.concat([relabelled, reference.head(0)])
    kept, removed = without_reference(mixed, reference)
    assert removed == len(reference) and kept.empty
    assert overlap(relabelled, reference) == len(reference)
    assert len(set(row_keys(reference))) == len(reference)


def test_the_session_runs_training_and_test_splits_hold_no_reference_applicant(pipeline_run) -> None:  # type: ignore[no-untyped-def]
    from pipeline.data import TEST_FILE, TRAIN_FILE, load_split

    folders = list((pipeline_run.artefacts / "PrepareData").glob("*/"))
    assert folders
    reference = load_reference(REFERENCE)
    for folder in folders:
        for name in (TRAIN_FILE, TEST_FILE):
            features, _ = load_split(folder, name)
            assert overlap(features, reference) == 0, (folder, name)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["rows"]["held_for_reference"] == 100 and manifest["rows"]["reference"] == 100


def _moves(*steps: tuple[str, str]) -> dict:
    return {"moves": [{"alias": "champion", "kind": kind, "tag": tag} for kind, tag in steps]}


def test_rollback_undoes_promotions_like_a_stack() -> None:
    assert aliases.previous_champion(_moves(("gate", "A"))) is None
    assert aliases.previous_champion(_moves(("gate", "A"), ("promote", "B"))) == "A"
    assert aliases.previous_champion(_moves(("gate", "A"), ("promote", "B"), ("rollback", "A"))) is None
    steps = (("gate", "A"), ("gate", "B"), ("forced", "C"), ("rollback", "B"))
    assert aliases.previous_champion(_moves(*steps)) == "A"
    assert aliases.previous_champion(_moves(*steps, ("rollback", "D"))) == "B"  # --to a model never champion


def test_a_store_from_before_aliases_is_read_as_champion_moves(tmp_path: Path) -> None:
    legacy = tmp_path / "promotions" / "admissions.json"
    legacy.parent.mkdir()
    history = [
        {"tag": "admissions:a", "promoted_at": "2026-11-01T00:00:00+00:00", "forced": False, "passed": True,
         "previously_promoted": None, "checks": [{"says": "held_out_rmse 0.06 (no baseline)"}]},
        {"tag": "admissions:b", "promoted_at": "2026-11-02T00:00:00+00:00", "forced": True, "reason": "new rules",
         "previously_promoted": "admissions:a", "checks": []},
    ]  # fmt: skip
    legacy.write_text(json.dumps({"model": "admissions", "promoted": "admissions:b", "history": history}))
    assert aliases.promoted_tag("admissions", tmp_path) == "admissions:b"
    assert aliases.decision("admissions:a", tmp_path)["verdict"] == "promoted"  # type: ignore[index]
    assert aliases.previous_champion(aliases.read("admissions", tmp_path)) == "admissions:a"
    alias_moves.move("admissions:a", "champion", kind="rollback", reason="r", by="test", home=tmp_path)
    record = aliases.read("admissions", tmp_path)
    assert [m["tag"] for m in record["moves"]] == ["admissions:a", "admissions:b", "admissions:a"]
    assert record["moves"][1]["kind"] == "forced" and record["moves"][1]["reason"] == "new rules"


def test_status_says_when_the_served_model_is_no_longer_champion(tmp_path: Path) -> None:
    alias_moves.move("admissions:a", "champion", kind="gate", reason="passed", by="run 1", home=tmp_path)
    alias_moves.move("admissions:b", "challenger", kind="gate", reason="lost", by="run 2", home=tmp_path)
    served = aliases.status("admissions:a", None, tmp_path)
    assert served["aliases"] == ["champion"] and served["promoted"] is True and "note" not in served
    assert [m["tag"] for m in served["last_moves"]] == ["admissions:b", "admissions:a"]
    alias_moves.move("admissions:b", "champion", kind="promote", reason="by hand", by="me", home=tmp_path)
    after = aliases.status("admissions:a", None, tmp_path)
    assert after["aliases"] == [] and after["currently_promoted"] == "admissions:b"
    assert "the champion is now admissions:b: restart" in after["note"]
    assert aliases.read("admissions", tmp_path)["aliases"] == {"champion": "admissions:b"}  # not its own challenger


@pytest.mark.parametrize("recipe", ["", "   "])
def test_moving_by_hand_needs_a_reason(recipe: str) -> None:
    from pipeline.cli import aliases
    from pipeline.errors import LineageError

    with pytest.raises(LineageError, match="a reason is required"):
        aliases.make_champion("admissions:x", recipe, "promote")


def test_the_latest_image_tag_follows_the_champion(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.package import Containerize

    monkeypatch.setattr(aliases, "promoted_tag", lambda name, home=None: "admissions:champ")
    task = Containerize(bento="admissions_api:x")
    assert task.latest_for("admissions:champ") == (["admissions_api:latest"], "")
    tags, why = task.latest_for("admissions:other")
    assert tags == [] and why == (
        "not tagged admissions_api:latest: its model admissions:other is not the champion (admissions:champ)"
    )
    assert Containerize(bento="admissions_api:x", tag_latest=False).latest_for("admissions:champ")[0] == []


def test_against_the_champion_never_says_better_by_minus_zero() -> None:
    same = gate.against_champion(0.06, 0.06, "admissions:c", 0.005)
    assert same.passed and "better by 0.0000" in same.says
    worse = gate.against_champion(0.0651, 0.06, "admissions:c", 0.005)
    assert not worse.passed and "worse by 0.0051 (tolerance 0.005)" in worse.says


def test_intervals_that_cover_less_than_promised_are_refused_and_wider_ones_pass_said_so() -> None:
    assert not gate.coverage(0.84, 0.9, 0.05).passed
    assert gate.coverage(0.87, 0.9, 0.05).passed
    wide = gate.coverage(0.97, 0.9, 0.05)
    assert wide.passed and "above nominal 0.9" in wide.says and "wider than needed" in wide.says
