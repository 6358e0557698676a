"""ReportRun: one self-contained HTML file per run (plots embedded as data URIs, no scripts, no links out).

Candidate comparison with the CV RMSE of every fold, predicted vs actual, residuals against each
feature, interval coverage overall and by decile, the global view, the model card and the run's
lineage, and the promotion gate's verdict with every check (a refused model has its report too: the gate
records its verdict and the run stops after the report). The Markdown report of SelectModel stays for
terminals.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import bentoml
import luigi
import pandas as pd
from luigi.util import inherits

from core.artefact import CARD_FILE, LINEAGE_FILE
from core.contract import FEATURE_NAMES
from pipeline.card import sampled_rows
from pipeline.data import TEST_FILE, PrepareData, load_split
from pipeline.evaluate import PREDICTIONS_FILE, EvaluateModel, Metrics, load_metrics
from pipeline.explain import GLOBAL_PLOT, ExplainModel, embedded_png, load_global_view
from pipeline.intervals import CalibrateIntervals, Intervals, load_intervals
from pipeline.plots import PLOT_META
from pipeline.promote import PromoteModel, load_decision
from pipeline.provenance import read_manifest
from pipeline.register import RegisterModel
from pipeline.scale import PLOT_MAX_POINTS, sample_rows
from pipeline.selection import SelectModel, load_selection
from pipeline.task import PipelineTask

REPORT_HTML = "report.html"
_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}img{max-width:100%}pre{background:#f6f6f6;padding:1em;"
    "white-space:pre-wrap}.chosen{background:#e8f5e9}"
)


def _table(frame: pd.DataFrame, highlight: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(
            f"<td>{value:.4f}</td>" if isinstance(value, float) else f"<td>{html.escape(str(value))}</td>"
            for value in row
        )
        marker = ' class="chosen"' if highlight is not None and row.iloc[0] == highlight else ""
        rows.append(f"<tr{marker}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def card_html(markdown: str) -> str:
    """The model card's Markdown as HTML, its headings one level down (the card's title is an h2 here).

    markdown-it-py (CommonMark, plus tables) is already in the lock through BentoML's rich. Raw HTML in
    the card is escaped, not passed through: the card quotes run parameters.
    """
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(markdown)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    return str(parser.renderer.render(tokens, parser.options, {}))


def _png(figure: Any, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, metadata=PLOT_META)
    return embedded_png(path)


def fold_plot(metrics: dict[str, Metrics], chosen: str, path: Path) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.5), dpi=80)
    axis = figure.subplots()
    names = list(metrics)
    for i, name in enumerate(names):
        values = metrics[name]["cv"].get("per_fold_rmse", [])
        axis.scatter(values, [i] * len(values), alpha=0.6, color="tab:green" if name == chosen else "tab:blue")
        axis.scatter([metrics[name]["cv"]["rmse"]["mean"]], [i], marker="|", s=400, color="black")
    axis.set_yticks(range(len(names)), names)
    axis.invert_yaxis()
    axis.set(xlabel="CV RMSE per fold (bar: mean)", title="Candidates: the spread over folds")
    return _png(figure, path)


def residual_plot(predictions: pd.DataFrame, features: pd.DataFrame, path: Path, seed: int = 0) -> str:
    """Residuals against each feature and their histogram; past ``PLOT_MAX_POINTS`` held-out rows, of a
    seeded sample of them (a million points take matplotlib minutes and show no more)."""
    from matplotlib.figure import Figure

    every = predictions["actual"] - predictions["predicted"]
    shown, _ = sample_rows(predictions, None, PLOT_MAX_POINTS, seed)
    figure = Figure(figsize=(12, 5.5), dpi=70)
    axes = figure.subplots(2, 4).ravel()
    residual = shown["actual"] - shown["predicted"]
    for axis, name in zip(axes, FEATURE_NAMES, strict=False):
        axis.scatter(features.loc[shown.index, name], residual, s=8, alpha=0.6)
        axis.axhline(0, color="grey", linewidth=1, linestyle="--")
        axis.set(xlabel=name, ylabel="actual - predicted")
    axes[-1].hist(every, bins=20)
    axes[-1].set(xlabel="residual", title="Residuals (held-out)")
    return _png(figure, path)


def decile_plot(deciles: list[dict[str, Any]], level: float, path: Path) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), dpi=80)
    axis = figure.subplots()
    axis.bar([d["decile"] for d in deciles], [d["coverage"] for d in deciles])
    axis.axhline(level, color="black", linestyle="--", linewidth=1, label=f"nominal {level:.0%}")
    axis.set(xlabel="decile of the predicted chance (1 = lowest)", ylabel="coverage", ylim=(0, 1.05))
    axis.set_title("Interval coverage by decile (out-of-fold)")
    axis.legend(loc="lower right")
    return _png(figure, path)


def group_plot(groups: list[dict[str, Any]], level: float, path: Path) -> str:
    """Coverage (bars, nominal dashed) and mean width (dots, right axis) per group of each breakdown."""
    from matplotlib.figure import Figure

    breakdowns = list(dict.fromkeys(g["breakdown"] for g in groups))
    figure = Figure(figsize=(12, 3.4), dpi=70)
    axes = figure.subplots(1, len(breakdowns), sharey=True)
    for axis, name in zip(axes, breakdowns, strict=True):
        part = [g for g in groups if g["breakdown"] == name]
        labels = [g["group"] for g in part]
        colours = ["tab:blue" if g["judged"] else "lightgrey" for g in part]
        axis.bar(labels, [g[f"coverage_{level:g}"] for g in part], color=colours)
        axis.axhline(level, color="black", linestyle="--", linewidth=1)
        axis.set(title=name, ylim=(0, 1.05))
        twin = axis.twinx()
        twin.plot(labels, [g[f"width_{level:g}"] for g in part], "o-", color="tab:orange")
        twin.set_ylim(0, max(g[f"width_{level:g}"] for g in groups) * 1.2)
    axes[0].set_ylabel(f"coverage at {level:.0%} (grey: not judged)")
    twin.set_ylabel("mean width", color="tab:orange")
    return _png(figure, path)


def groups_frame(groups: list[dict[str, Any]], level: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "breakdown": g["breakdown"],
                "group": g["group"],
                "predictions": str(g["predictions"]),
                "applicants": str(g["applicants"]),
                "RMSE": g["rmse"],
                "bias": g["bias"],
                f"coverage {level:.0%}": g[f"coverage_{level:g}"],
                "mean width": g[f"width_{level:g}"],
                "judged": "yes" if g["judged"] else "no",
            }
            for g in groups
        ]
    )


def coverage_table(intervals: Intervals) -> pd.DataFrame:
    cov = intervals["coverage"]
    return pd.DataFrame(
        [
            {
                "nominal": f"{float(level):.0%}",
                "half-width": float(intervals["half_widths"][level]),
                "held-out coverage": float(cov["held_out"][level]["coverage"]),
                "CV coverage": float(cov["cv"][level]["coverage"]),
                "held-out mean width": float(cov["held_out"][level]["mean_width"]),
                "CV mean width": float(cov["cv"][level]["mean_width"]),
            }
            for level in sorted(cov["held_out"], key=float)
        ]
    )


def group_sections(intervals: Intervals, level: float, folder: Path) -> list[str]:
    """Errors and coverage by group, CV and held-out, with the plot (intervals from before issue 22: none)."""
    coverage = intervals["coverage"]
    if "cv_groups" not in coverage:
        return []
    plot = group_plot(coverage["cv_groups"], level, folder / "groups.png")
    return [
        "<h3>Errors and intervals by group</h3>",
        "<p>Bias is the mean of predicted minus actual. Coverage is judged for groups of at least 80 predictions "
        "(deciles of the predicted chance, ratings, research); the bars show coverage, the line the mean width. "
        f"Out-of-fold, {coverage['cv_repeats']} CV repeats:</p>",
        f'<img alt="coverage and width by group" src="{plot}">',
        _table(groups_frame(coverage["cv_groups"], level)),
        f"<p>Held-out split ({coverage['held_out_rows']} applicants):</p>",
        _table(groups_frame(coverage["held_out_groups"], level)),
    ]


def gate_html(decision: dict[str, Any]) -> str:
    """The gate's verdict and a table of its checks."""
    checks = pd.DataFrame(
        [{"check": c["name"], "passed": "yes" if c["passed"] else "NO", "says": c["says"]} for c in decision["checks"]]
    )
    return (
        f"<p><b>{html.escape(decision['outcome'])}</b> ({html.escape(decision['at'])}; champion before: "
        f"{html.escape(str(decision['champion_before'] or 'none'))}).</p>" + _table(checks)
    )


def _sampled_note(rows: int, seed: int) -> list[str]:
    """A sentence under a scatter plot drawn from a sample of its rows (none when it shows every row)."""
    if rows <= PLOT_MAX_POINTS:
        return []
    return [
        f"<p>Scatter plots: a seeded sample (seed {seed}) of {PLOT_MAX_POINTS:,} of the {rows:,} held-out rows; "
        "the histogram and every score use all of them.</p>"
    ]


def render(
    inputs: dict[str, Path],
    evaluations: dict[str, Path],
    tag: str,
    folder: Path,
    decision: dict[str, Any],
    seed: int = 0,
) -> str:
    selection = load_selection(inputs["selection"])
    intervals = load_intervals(inputs["intervals"])
    view = load_global_view(inputs["explanation"])
    metrics = {name: load_metrics(path) for name, path in evaluations.items()}
    chosen = selection["chosen"]
    columns = ["candidate", "cv_rmse", "cv_rmse_std", "cv_r2", "test_rmse", "test_r2"]
    ranking = pd.DataFrame(selection["ranking"])[columns]
    predictions = pd.read_csv(evaluations[chosen] / PREDICTIONS_FILE, index_col=0)
    test_features, _ = load_split(inputs["data"], TEST_FILE)
    model_folder = Path(bentoml.models.get(tag).path)
    card = (model_folder / CARD_FILE).read_text() if (model_folder / CARD_FILE).is_file() else "## Model card\n\n(none)"
    lineage = json.loads((model_folder / LINEAGE_FILE).read_text())["lineage"]
    lineage_frame = pd.DataFrame(
        [{"task": m["task_family"], "task id": m["task_id"], "finished": m.get("finished_at", "")} for m in lineage]
    )
    level = float(intervals["default_level"])
    coefficients = (
        [
            "<h3>Coefficients (linear model)</h3>",
            _table(pd.DataFrame(view["coefficients"])[["feature", "per_unit", "unit", "per_std"]]),
        ]
        if view["coefficients"]
        else []
    )
    importances = pd.DataFrame(view["importances"]).sort_values("rmse_increase", ascending=False)
    samples = view.get("samples", {})
    data = read_manifest(inputs["data"])
    deciles = decile_plot(intervals["coverage"]["cv_by_decile"], level, folder / "deciles.png")
    sections = [
        f"<h1>Run report: {html.escape(tag)}</h1>",
        f"<p>Data sha256 <code>{data['parameters']['data_sha256']}</code>; {data['rows']['train']} training and "
        f"{data['rows']['test']} held-out rows. <b>Selected: {html.escape(chosen)}</b>. "
        f"{html.escape(selection['reason'])}.</p>",
        "<h2>Promotion gate</h2>",
        gate_html(decision),
        "<h2>Candidates</h2>",
        _table(ranking, highlight=chosen),
        f'<img alt="CV per fold" src="{fold_plot(metrics, chosen, folder / "folds.png")}">',
        f"<h2>Predicted vs actual ({html.escape(chosen)}, held-out)</h2>",
        f'<img alt="predicted vs actual" src="{embedded_png(evaluations[chosen] / "test_predictions.png")}">',
        "<h2>Residuals against each feature (held-out)</h2>",
        *_sampled_note(len(predictions), seed),
        f'<img alt="residuals" src="{residual_plot(predictions, test_features, folder / "residuals.png", seed)}">',
        "<h2>Prediction intervals</h2>",
        f"<p>{html.escape(intervals['method'])}.</p>",
        _table(coverage_table(intervals)),
        f'<img alt="coverage by decile" src="{deciles}">',
        *group_sections(intervals, level, folder),
        "<h2>Global view</h2>",
        *coefficients,
        "<h3>Permutation importance (held-out RMSE increase when a feature is shuffled)</h3>",
        *[f"<p>On {html.escape(on)}.</p>" for on in [sampled_rows(samples.get("importances"), "held-out")] if on],
        _table(importances),
        f'<img alt="global view" src="{embedded_png(inputs["explanation"] / GLOBAL_PLOT)}">',
        *[
            f"<p>Partial dependence: averaged over {html.escape(on)}.</p>"
            for on in [sampled_rows(samples.get("partial_dependence"), "training")]
            if on
        ],
        f'<section class="card">{card_html(card)}</section>',
        "<h2>Lineage</h2>",
        _table(lineage_frame),
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Run report {html.escape(tag)}</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


@inherits(PromoteModel)
class ReportRun(PipelineTask):
    """report.html: the run for a person who reads it in a browser, offline."""

    candidates: list[str]

    def requires(self) -> dict[str, luigi.Task]:
        tasks: dict[str, luigi.Task] = {
            "gate": self.clone(PromoteModel),
            "model": self.clone(RegisterModel),
            "selection": self.clone(SelectModel),
            "intervals": self.clone(CalibrateIntervals),
            "explanation": self.clone(ExplainModel),
            "data": self.clone(PrepareData),
        }
        for name in self.candidates:
            tasks[f"evaluation:{name}"] = self.clone(EvaluateModel, candidate=name)
        return tasks

    def produce(self, folder: Path) -> dict[str, Any]:
        inputs = {name: self.input_dir(name) for name in ("selection", "intervals", "explanation", "data")}
        evaluations = {name: self.input_dir(f"evaluation:{name}") for name in self.candidates}
        tag = self.clone(RegisterModel).model_tag
        decision = load_decision(self.input_dir("gate"))
        (folder / REPORT_HTML).write_text(render(inputs, evaluations, tag, folder, decision, self.seed))
        for plot in ("folds.png", "residuals.png", "deciles.png", "groups.png"):
            (folder / plot).unlink(missing_ok=True)  # embedded in the HTML already
        return {"report": REPORT_HTML, "gate_verdict_at": decision["at"]}

    def complete(self) -> bool:
        """Done when written for the gate's current verdict (a forced promotion gives a new one)."""
        promote = self.clone(PromoteModel)
        if not super().complete() or not promote.complete():  # else Luigi would not look upstream
            return False
        gate = promote.output().path
        try:
            return bool(
                read_manifest(Path(self.output().path)).get("gate_verdict_at") == load_decision(Path(gate))["at"]
            )
        except (OSError, ValueError, KeyError):
            return False

    def run(self) -> None:
        shutil.rmtree(self.output().path, ignore_errors=True)  # written for an earlier verdict
        super().run()
