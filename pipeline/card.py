"""The model card: what the model is for, what it was trained on, how good it is, and where it falls short.

Written in Markdown by RegisterModel into the model's folder in the store (``model_card.md``), so the
store, every Bento of the model and ``GET /model/card`` carry the same text. docs/model-card.md
explains each section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.contract import FEATURES, TARGET

CALIBRATION_FOLDS = 5  # pipeline.intervals.CALIBRATION_FOLDS (not imported: that module imports this one's users)

if TYPE_CHECKING:  # the stage modules import this one
    from pipeline.explain import GlobalView
    from pipeline.intervals import Intervals
    from pipeline.selection import Selection


def _range(spec: Any) -> str:
    kind = "integer" if spec.integer else (f"steps of {spec.step:g}" if spec.step else "real")
    return f"{spec.minimum:g} to {spec.maximum:g} ({kind})"


def _spread(score: dict[str, float], digits: int) -> str:
    return f"{score['mean']:.{digits}f} +- {score['std']:.{digits}f}"


def _coverage_rows(coverage: dict[str, Any]) -> str:
    rows = []
    for level in sorted(coverage["held_out"], key=float):
        held, cv = coverage["held_out"][level], coverage["cv"][level]
        rows.append(
            f"| {float(level):.0%} | {held['coverage']:.1%} | {cv['coverage']:.1%} | "
            f"{held['mean_width']:.3f} | {cv['mean_width']:.3f} |"
        )
    return "\n".join(rows)


GUARANTEE = (
    "For each university rating, the interval is built so that about 9 in 10 applicants' outcomes fall "
    "inside the 90% interval (and 8 in 10, 19 in 20 at 80% and 95%), and it is wider for applicants whose "
    "profile the model predicts less surely. This is checked on past data, not proven: it is a "
    "group-conditional calibration (per rating), not a promise for any single applicant, and it holds "
    "only as long as new applicants resemble the training data."
)


def group_rows(groups: list[dict[str, Any]], level: float) -> str:
    """Markdown rows: per group its size, RMSE, bias and coverage/width at ``level`` (judged or not)."""
    rows = []
    for g in groups:
        judged = "yes" if g["judged"] else "no"
        rows.append(
            f"| {g['breakdown']} | {g['group']} | {g['predictions']} ({g['applicants']}) | {g['rmse']:.4f} | "
            f"{g['bias']:+.4f} | {g[f'coverage_{level:g}']:.1%} | {g[f'width_{level:g}']:.3f} | {judged} |"
        )
    return "\n".join(rows)


def groups_section(intervals: Intervals) -> str:
    """Errors and interval coverage by group (issue 22), CV then held-out, with sizes."""
    coverage = intervals["coverage"]
    if "cv_groups" not in coverage:
        return ""
    level = float(intervals["default_level"])
    head = (
        f"| breakdown | group | predictions (applicants) | RMSE | bias | coverage {level:.0%} | mean width | judged |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    worst = coverage.get("cv_worst", {})
    worst_lines = "\n".join(
        f"- {float(lv):.0%}: {w['breakdown']} {w['group']} at {w['coverage']:.1%} ({w['predictions']} predictions)"
        for lv, w in worst.items()
    )
    return f"""## Errors and intervals by group

Bias is the mean of predicted minus actual (positive: the model promises too much). Coverage is judged
for groups of at least 80 predictions (deciles of the predicted chance, ratings, research); CGPA deciles
are reported. Out-of-fold ({coverage["cv_repeats"]} x {CALIBRATION_FOLDS}-fold CV on the training split;
each applicant predicted once per repeat):

{head}
{group_rows(coverage["cv_groups"], level)}

The judged group furthest from nominal, per level:

{worst_lines}

Held-out split ({coverage["held_out_rows"]} applicants; small groups, so noisy):

{head}
{group_rows(coverage["held_out_groups"], level)}
"""


def _global_lines(view: GlobalView) -> str:
    """Coefficients for linear models, then permutation importance for any model (docs/model-card.md)."""
    parts = []
    coefficients = view.get("coefficients")
    if coefficients:
        lines = [
            f"- {c['feature']}: {c['per_unit']:+.4f} per {c['unit']} ({c['per_std']:+.4f} per standard deviation)"
            for c in coefficients
        ]
        parts.append("Coefficients (change in the predicted chance, other features held fixed):\n\n" + "\n".join(lines))
    ranked = sorted(view["importances"], key=lambda i: -i["rmse_increase"])
    lines = [f"- {i['feature']}: held-out RMSE +{i['rmse_increase']:.4f} when shuffled" for i in ranked]
    samples = view.get("samples", {})
    on = sampled_rows(samples.get("importances"), "held-out")
    parts.append(f"Permutation importance (held-out split{'; ' + on if on else ''}):\n\n" + "\n".join(lines))
    if on := sampled_rows(samples.get("partial_dependence"), "training"):
        parts.append(f"Partial dependence (in the run's report) is averaged over {on}.")
    return "\n\n".join(parts)


def sampled_rows(sample: dict[str, int] | None, split: str) -> str:
    """'a seeded sample of 5,000 of the 194,223 held-out rows (seed 42)' when a step used a sample; else ''.

    Past pipeline/scale.py's bounds the explanations work on seeded samples, so a million-row file costs
    what 5,000 rows do; below them (the vendored data) every row is used and nothing is said."""
    if not sample or sample["rows"] >= sample["of"]:
        return ""
    return f"a seeded sample of {sample['rows']:,} of the {sample['of']:,} {split} rows (seed {sample['seed']})"


def model_card(
    tag: str,
    manifest: dict[str, Any],
    selection: Selection,
    intervals: Intervals,
    view: GlobalView,
    data: dict[str, Any],
) -> str:
    """The card's Markdown text from the run's own records (no free text but the fixed sections)."""
    params = manifest["parameters"]
    metrics = selection["metrics"]
    cv, test = metrics["cv"], metrics["test"]
    rows = data.get("rows", {})
    features = "\n".join(f"| `{s.name}` | {s.description} | {_range(s)} |" for s in FEATURES)
    level = float(intervals["default_level"])
    cv_scores = f"{_spread(cv['r2'], 3)} | {_spread(cv['rmse'], 4)} | {_spread(cv['mae'], 4)}"
    default_cov = intervals["coverage"]["held_out"][f"{level:g}"]["coverage"]
    return f"""# Model card: {tag}

## Intended use

Decision **support** for graduate-admissions staff: an estimate of an applicant's chance of admission,
with a {level:.0%} prediction interval and, on request, the features that moved it. It must **never
make or automate an admission decision**: a person decides, and can see and overrule every input.
Not for any other university, programme or period than the data below without re-training and
re-checking.

## Model

- Candidate: **{selection["chosen"]}** (scikit-learn pipeline), chosen by: {selection["reason"]}.
- Selection rule: {selection["rule"]}.
- Seed {params["seed"]}; code version `{params["code_version"]}`; pipeline task `{manifest["task_id"]}`.

## Training data

- Raw file `{params.get("raw_data", "?")}`, sha256 `{params["data_sha256"]}`.
- Source: "Graduate Admission 2" (Mohan S Acharya et al., ICCIDS 2019), CC0; see data/README.md.
- {rows.get("valid", "?")} valid rows of {rows.get("raw", "?")} ({rows.get("rejected", "?")} rejected);
  {rows.get("train", "?")} for training, {rows.get("test", "?")} held out (test share {params["test_size"]}).

## Features (the API refuses values outside these ranges)

| feature | meaning | valid values |
|---|---|---|
{features}

Output: `{TARGET.name}`, {TARGET.description}, clipped to [0, 1].

## Metrics

| | R^2 | RMSE | MAE |
|---|---|---|---|
| cross-validation ({cv["folds"]}-fold x {cv["repeats"]}, mean +- std) | {cv_scores} |
| held-out split | {test["r2"]:.3f} | {test["rmse"]:.4f} | {test["mae"]:.4f} |

## Prediction intervals

{intervals["method"]}. Served by default at {level:.0%} (held-out coverage {default_cov:.1%});
other calibrated levels on request. Measured coverage next to the nominal level:

| nominal | held-out coverage | CV coverage | held-out mean width | CV mean width |
|---|---|---|---|---|
{_coverage_rows(intervals["coverage"])}

Held-out: {intervals["coverage"]["held_out_rows"]} rows; CV: {intervals["coverage"]["cv_rows"]} out-of-fold predictions.
Calibrated on {intervals["calibration_rows"]} of {intervals.get("training_rows", "?")} training rows.

**What it guarantees.** {GUARANTEE}

{groups_section(intervals)}
## What drives the predictions

{_global_lines(view)}

## Limitations

- One university's applicants ({rows.get("valid", "?")} profiles) from one period: the model has not seen
  other institutions, programmes or years, and the relation between scores and admission drifts.
- The target is a *stated* chance of admission from the original survey, not an observed decision.
- The data holds **no protected attributes** (gender, nationality, age, disability, ...), so no fairness
  audit is possible from it: the model can still be unfair through proxies (e.g. TOEFL, university
  rating), and nothing here shows it is not.
- Scores are correlated (GRE, TOEFL, CGPA): single coefficients and contributions split shared effects
  between them and are not causal.
- Inputs outside the ranges above are refused; combinations rare in the data (e.g. a high GRE with a
  low CGPA) are extrapolation even when each value is in range.
"""


def gate_section(decision: dict[str, Any]) -> str:
    """The promotion gate's verdict on this model and each of its checks, for the card."""
    rows = "\n".join(
        f"| {'passed' if check['passed'] else '**failed**'} | {check['says'].replace('|', '/')} |"
        for check in decision["checks"]
    )
    forced = f" Forced, with the reason: {decision['reason']}." if decision.get("verdict") == "forced" else ""
    before = decision["champion_before"] or "none"
    return f"""## The promotion gate

Verdict on {decision["at"]}: **{decision["outcome"]}** (champion before: {before}).{forced}
The checks (docs/model-card.md, "The promotion gate"):

| | check |
|---|---|
{rows}

Which model is champion now, and every move of the aliases: `GET /model` or `make aliases`.
"""
