"""The promotion gate's checks: pure functions of models, numbers and data; each gives one sentence.

Absolute checks (a model must pass them even as the first of its store):
- floors on the reference set and on the candidate's own CV: R^2 at least ``min_r2`` and RMSE at most
  ``max_rmse_ratio`` times that of always predicting the training mean;
- behaviour: on the reference applicants, the chance must not fall by more than ``tolerance`` when one
  feature improves by its step, all else equal;
- interval coverage: the CV coverage near its nominal level.
Checks against the champion (when there is one):
- the reference set: the candidate's RMSE at most the champion's plus a tolerance;
- the data: each column of the new training data against the champion's training profile (PSI), and
  the champion's error on the new labels against its own recorded held-out error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.contract import FEATURES, to_chance
from core.profile import psi

# How much each feature improves in the behaviour check: a small, realistic step for each.
IMPROVEMENT = {"gre_score": 5, "toefl_score": 3, "university_rating": 1, "sop": 0.5, "lor": 0.5, "cgpa": 0.25}
BINARY = ("research",)  # 0 -> 1


@dataclass(frozen=True)
class Check:
    """One check's outcome: its name, whether it passed, one sentence with the numbers, the numbers."""

    name: str
    passed: bool
    says: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def floors(name: str, where: str, r2_: float, rmse_: float, mean_rmse: float, min_r2: float, max_ratio: float) -> Check:
    """R^2 at least ``min_r2`` and RMSE at most ``max_ratio`` of the mean-predictor's RMSE."""
    ratio = rmse_ / mean_rmse if mean_rmse else float("inf")
    passed = r2_ >= min_r2 and ratio <= max_ratio
    says = (
        f"{where}: R^2 {r2_:.3f} (at least {min_r2:g}), RMSE {rmse_:.4f} = {ratio:.2f} x that of predicting "
        f"the training mean ({mean_rmse:.4f}; at most {max_ratio:g} x)"
    )
    numbers = {"r2": r2_, "rmse": rmse_, "mean_rmse": mean_rmse, "ratio": ratio}
    return Check(name, passed, says, numbers=numbers)


def improved(features: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(before, after): the applicants with ``name`` one step lower and as it is, or 0 and 1 for a binary
    feature, within the contract's bounds (rows already at the top compare the top with one step below)."""
    spec = next(spec for spec in FEATURES if spec.name == name)
    after, before = features.copy(), features.copy()
    if name in BINARY:
        before[name], after[name] = spec.minimum, spec.maximum
    else:
        after[name] = np.minimum(features[name] + IMPROVEMENT[name], spec.maximum)
        before[name] = after[name] - IMPROVEMENT[name]
    return before, after


def behaviour(model: Any, applicants: pd.DataFrame, tolerance: float) -> Check:
    """The chance must not fall by more than ``tolerance`` when a feature improves, all else equal."""
    falls: dict[str, float] = {}
    for spec in FEATURES:
        before, after = improved(applicants, spec.name)
        change = to_chance(model.predict(after)) - to_chance(model.predict(before))
        falls[spec.name] = float(max(0.0, -change.min()))
    worst = max(falls, key=lambda name: falls[name])
    step = "goes from 0 to 1" if worst in BINARY else f"rises by {IMPROVEMENT[worst]:g}"
    if falls[worst] > tolerance:
        broken = sorted((name for name in falls if falls[name] > tolerance), key=lambda n: -falls[n])
        says = (
            f"behaviour: the chance falls by up to {falls[worst]:.3f} when {worst} {step}, all else equal "
            f"(tolerance {tolerance:g}; broken for {', '.join(broken)})"
        )
    else:
        says = (
            f"behaviour: no chance falls by more than {tolerance:g} when one feature improves "
            f"(largest fall {falls[worst]:.4f}, when {worst} {step})"
        )
    return Check("behaviour", falls[worst] <= tolerance, says, numbers={"largest_fall": falls})


def coverage(measured: float, nominal: float, tolerance: float) -> Check:
    """Intervals that cover less than promised are refused; wider ones pass, said so. The intervals are
    calibrated per group of applicants (pipeline/intervals.py), which covers more than nominal on average,
    the more so on little data (95% at 90% with 80 training rows); their width is judged by the
    interval tests and the card, not here."""
    short = nominal - measured
    if short > tolerance:
        verdict = f"below nominal {nominal:g} by more than {tolerance:g}"
    elif measured - nominal > tolerance:
        verdict = f"above nominal {nominal:g} by more than {tolerance:g} (wider than needed, which passes)"
    else:
        verdict = f"within {tolerance:g} of nominal {nominal:g}"
    says = f"intervals: CV coverage {measured:.3f} is {verdict}"
    return Check("coverage", short <= tolerance, says, numbers={"coverage": measured, "nominal": nominal})


def against_champion(candidate_rmse: float, champion_rmse: float, champion: str, tolerance: float) -> Check:
    worse_by = candidate_rmse - champion_rmse
    relation = f"worse by {worse_by:.4f}" if worse_by > 0 else f"better by {abs(worse_by):.4f}"  # never "-0.0000"
    says = (
        f"reference RMSE {candidate_rmse:.4f} vs the champion {champion}'s {champion_rmse:.4f}: "
        f"{relation} (tolerance {tolerance:g})"
    )
    numbers = {"candidate": candidate_rmse, "champion": champion_rmse}
    return Check("reference_vs_champion", worse_by <= tolerance, says, numbers=numbers)


def data_shift(champion_profile: dict[str, Any], data: pd.DataFrame, max_psi: float) -> Check:
    """Each column of the new training data against the champion's training profile."""
    indices = {name: psi(champion_profile[name], data[name].to_numpy()) for name in data.columns}
    worst = max(indices, key=lambda name: indices[name])
    moved = sorted((name for name in indices if indices[name] > max_psi), key=lambda n: -indices[n])
    if moved:
        listed = ", ".join(f"{name} (PSI {indices[name]:.2f})" for name in moved)
        says = f"data: the training data differ from the champion's in {listed}; at most {max_psi:g}"
    else:
        says = (
            "data: every column is distributed like the champion's training data "
            f"(largest PSI {indices[worst]:.3f}, {worst})"
        )
    return Check("data_shift", not moved, says, numbers={"psi": indices})


def champion_on_new_labels(
    new_rmse: float, recorded_rmse: float, champion: str, max_ratio: float, sampled: tuple[int, int] | None = None
) -> Check:
    """Labels that disagree with what the champion learnt: its error on them against its own held-out error.
    ``sampled``: (rows used, rows available) when the error was measured on a seeded sample of the new rows."""
    ratio = new_rmse / recorded_rmse if recorded_rmse else float("inf")
    on = f" (on a seeded sample of {sampled[0]:,} of the {sampled[1]:,} new rows)" if sampled else ""
    says = (
        f"labels: the champion {champion} predicts the new labels with RMSE {new_rmse:.4f}{on}, {ratio:.2f} x "
        f"its own held-out {recorded_rmse:.4f} (at most {max_ratio:g} x)"
    )
    numbers: dict[str, Any] = {"rmse": new_rmse, "recorded_rmse": recorded_rmse, "ratio": ratio}
    if sampled:
        numbers["rows"], numbers["of"] = sampled
    return Check("labels_vs_champion", ratio <= max_ratio, says, numbers=numbers)


# The groups the gate compares a candidate with the champion in, on the reference applicants.
GROUP_MIN_ROWS = 10  # a group needs this many reference applicants to be judged (paired, so little noise)


def reference_groups(reference: pd.DataFrame, cgpa_edges: list[float]) -> dict[str, np.ndarray]:
    """Masks of the reference applicants per group: university rating, research, decile of CGPA (between
    the candidate's training deciles)."""
    groups = {}
    for value in sorted(reference["university_rating"].unique()):
        groups[f"university rating {value:g}"] = (reference["university_rating"] == value).to_numpy()
    for value in sorted(reference["research"].unique()):
        groups[f"research {value:g}"] = (reference["research"] == value).to_numpy()
    decile = np.searchsorted(np.asarray(cgpa_edges), reference["cgpa"].to_numpy(), side="right")
    for d in range(len(cgpa_edges) + 1):
        groups[f"CGPA decile {d + 1}"] = decile == d
    return groups


def groups_vs_champion(
    actual: np.ndarray,
    candidate: np.ndarray,
    champion_chances: np.ndarray,
    groups: dict[str, np.ndarray],
    champion: str,
    tolerance: float,
) -> Check:
    """No judged group of reference applicants may get worse (RMSE) than with the champion by more than
    ``tolerance``; bias (mean predicted minus actual) is reported beside it."""
    numbers: dict[str, Any] = {}
    worse = []
    for name, mask in groups.items():
        if mask.sum() < GROUP_MIN_ROWS:
            numbers[name] = {"rows": int(mask.sum()), "judged": False}
            continue
        rmse_new = float(np.sqrt(np.mean((candidate[mask] - actual[mask]) ** 2)))
        rmse_old = float(np.sqrt(np.mean((champion_chances[mask] - actual[mask]) ** 2)))
        numbers[name] = {
            "rows": int(mask.sum()),
            "judged": True,
            "rmse": rmse_new,
            "champion_rmse": rmse_old,
            "bias": float(np.mean(candidate[mask] - actual[mask])),
            "champion_bias": float(np.mean(champion_chances[mask] - actual[mask])),
        }
        if rmse_new - rmse_old > tolerance:
            worse.append(name)
    judged = [name for name in numbers if numbers[name]["judged"]]
    if worse:
        listed = "; ".join(
            f"{name} ({numbers[name]['rows']} applicants): RMSE {numbers[name]['rmse']:.4f} vs "
            f"{numbers[name]['champion_rmse']:.4f}, bias {numbers[name]['bias']:+.4f} vs "
            f"{numbers[name]['champion_bias']:+.4f}"
            for name in sorted(worse, key=lambda n: numbers[n]["champion_rmse"] - numbers[n]["rmse"])
        )
        says = (
            f"groups: worse than the champion {champion} on the reference applicants by more than "
            f"{tolerance:g} RMSE in {listed}"
        )
    else:
        gap = max((numbers[n]["rmse"] - numbers[n]["champion_rmse"] for n in judged), default=0.0)
        says = (
            f"groups: no group of reference applicants is worse than with the champion {champion} by more than "
            f"{tolerance:g} RMSE ({len(judged)} groups of at least {GROUP_MIN_ROWS} judged; largest change "
            f"{gap:+.4f})"
        )
    return Check("groups_vs_champion", not worse, says, numbers=numbers)
