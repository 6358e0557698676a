"""The run's HTML report shows the model card as HTML, and both views of a linear model: coefficients
and permutation importance (docs/model-card.md, "Global view")."""

from __future__ import annotations

import re

import pytest

from pipeline.card import _global_lines
from pipeline.report import card_html
from tests.support.pipeline import PipelineRun, run_pipeline

VIEW = {
    "coefficients": [{"feature": "cgpa", "per_unit": 0.11, "unit": "CGPA point (of 10)", "per_std": 0.066}],
    "importances": [
        {"feature": "gre_score", "rmse_increase": 0.004, "std": 0.001},
        {"feature": "cgpa", "rmse_increase": 0.05, "std": 0.004},
    ],
}


def test_a_linear_models_card_has_its_coefficients_and_its_permutation_importance() -> None:
    text = _global_lines(VIEW)
    assert "- cgpa: +0.1100 per CGPA point (of 10)" in text
    assert "Permutation importance (held-out split):" in text
    assert text.index("- cgpa: held-out RMSE +0.0500") < text.index("- gre_score: held-out RMSE +0.0040")
    assert "Coefficients" not in _global_lines({"coefficients": None, "importances": VIEW["importances"]})


def test_the_card_is_rendered_as_html_with_its_headings_one_level_down() -> None:
    card = "# Model card: admissions:x\n\n## Metrics\n\n| | R^2 |\n|---|---|\n| held-out | 0.819 |\n\n"
    card += "**never** <b>x</b>\n"
    page = card_html(card)
    assert "<h2>Model card: admissions:x</h2>" in page and "<h3>Metrics</h3>" in page
    assert "<table>" in page and "<td>0.819</td>" in page
    assert "<strong>never</strong>" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page  # raw HTML in the card is shown, never interpreted
    assert "#" not in page and "**" not in page and "|---|" not in page


@pytest.mark.e2e
def test_the_report_shows_the_card_as_html_and_both_views_of_the_linear_model(pipeline_run: PipelineRun) -> None:
    result = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="ReportRun")
    assert result.returncode == 0, result.stderr[-3000:]
    (report,) = (pipeline_run.artefacts / "ReportRun").glob("*/report.html")
    page = report.read_text()
    assert f"<h2>Model card: {pipeline_run.model_tag}</h2>" in page
    assert "<h3>Intended use</h3>" in page and "<pre>" not in page and "## " not in page
    assert "<h3>Coefficients (linear model)</h3>" in page  # linear regression is selected on the vendored data
    assert "<h3>Permutation importance" in page
    assert page.count("Permutation importance (held-out split):") == 1  # in the card, too
    assert not re.search(r'(src|href)="(https?:)?//', page)  # still opens offline
