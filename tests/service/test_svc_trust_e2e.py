"""Intervals, explanations, the model card and promotion status through the real API (shared server)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.support.applicants import applicant
from tests.support.service import Service

pytestmark = pytest.mark.e2e
TIMEOUT = 30
STRONG = applicant(gre_score=335, toefl_score=118, university_rating=5, sop=5.0, lor=5.0, cgpa=9.9, research=1)


def predict(api: Service, path: str, body: Any, query: str = "") -> requests.Response:
    return requests.post(f"{api.url}{path}{query}", json=body, headers=api.headers(), timeout=TIMEOUT)


def test_predict_returns_the_interval_at_the_default_level_beside_the_chance(api: Service) -> None:
    body = predict(api, "/predict", applicant()).json()
    assert set(body) == {"chance", "model_tag", "interval", "interval_level", "prediction_id"}
    assert body["model_tag"] == api.model_tag and body["interval_level"] == 0.9
    low, high = body["interval"]
    assert 0 <= low < body["chance"] < high <= 1


def test_another_calibrated_level_or_none_can_be_asked_for(api: Service) -> None:
    wide = predict(api, "/predict", applicant()).json()
    narrow = predict(api, "/predict", applicant(), "?interval=0.8").json()
    assert narrow["interval_level"] == 0.8 and narrow["chance"] == wide["chance"]
    assert narrow["interval"][1] - narrow["interval"][0] < wide["interval"][1] - wide["interval"][0]
    none = predict(api, "/predict", applicant(), "?interval=none").json()
    assert none["interval"] is None and none["interval_level"] is None
    refused = predict(api, "/predict", applicant(), "?interval=0.5")
    assert refused.status_code == 400 and "calibrated levels 0.8, 0.9, 0.95" in refused.json()["error"]


@pytest.mark.parametrize("value", ["0", "0.0"])
def test_interval_zero_is_refused_not_taken_as_none(api: Service, value: str) -> None:
    """`?interval=0` silently meant no interval; a number asks for a level, and 0 is not one."""
    refused = predict(api, "/predict", applicant(), f"?interval={value}")
    assert refused.status_code == 400 and "calibrated levels" in refused.json()["error"]


@pytest.mark.parametrize("query", ["?explain=true", "?interval=0.8", "?explain=false&x=1"])
def test_jobs_refuse_query_parameters_they_would_ignore(api: Service, query: str) -> None:
    """`POST /jobs?explain=true` answered 202 and the job had no explanations."""
    refused = predict(api, "/jobs", {"applicants": [applicant()]}, query)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert (
        "/jobs takes no query parameters" in body["error"]
        and repr(query[1:].split("=", maxsplit=1)[0]) in body["error"]
    )
    csv = requests.post(
        f"{api.url}/jobs{query}",
        data=b"gre_score,toefl_score,university_rating,sop,lor,cgpa,research\n320,110,4,4.5,4.0,9.1,1\n",
        headers={**api.headers(), "Content-Type": "text/csv"},
        timeout=TIMEOUT,
    )
    assert csv.status_code == 400  # the CSV fast path too


def test_a_strong_applicants_interval_is_clipped_at_one(api: Service) -> None:
    body = predict(api, "/predict", STRONG, "?interval=0.95").json()
    assert body["interval"][1] == 1.0


def test_batch_rows_get_the_same_chance_and_interval_as_alone(api: Service) -> None:
    rows = [applicant(), STRONG, applicant(cgpa=7.0, research=0)]
    batch = predict(api, "/predict_batch", {"applicants": rows}).json()
    assert batch["interval_level"] == 0.9 and len(batch["intervals"]) == 3
    for row, chance, interval in zip(rows, batch["chances"], batch["intervals"], strict=True):
        alone = predict(api, "/predict", row).json()
        # The same arithmetic, in another service and another batch size: equal to the last bits on
        # this machine, but a BLAS may sum in another order elsewhere.
        assert alone["chance"] == pytest.approx(chance, abs=1e-12)
        assert alone["interval"] == pytest.approx(interval, abs=1e-12)


def test_explanations_are_opt_in_and_sum_to_the_chance(api: Service) -> None:
    assert "explanation" not in predict(api, "/predict", applicant()).json()
    body = predict(api, "/predict", STRONG, "?explain=true").json()
    assert body["chance"] == predict(api, "/predict", STRONG).json()["chance"]
    parts = body["explanation"]
    total = parts["base_value"] + sum(parts["contributions"].values()) + parts["clip_adjustment"]
    assert total == pytest.approx(body["chance"], abs=1e-9)
    assert parts["contributions"]["cgpa"] > 0  # well above the mean CGPA
    batch = predict(api, "/predict_batch", {"applicants": [applicant(), STRONG]}, "?explain=true").json()
    assert len(batch["explanations"]) == 2 and batch["chances"][1] == pytest.approx(body["chance"], abs=1e-12)
    explained = batch["explanations"][1]
    assert explained["contributions"] == pytest.approx(parts["contributions"], abs=1e-12)
    rest = {key: value for key, value in parts.items() if key != "contributions"}
    assert {key: value for key, value in explained.items() if key != "contributions"} == pytest.approx(rest, abs=1e-12)
    bad = predict(api, "/predict", applicant(), "?explain=perhaps")
    assert bad.status_code == 400 and "explain must be true or false" in bad.json()["error"]


def test_the_model_card_is_served_as_markdown(api: Service) -> None:
    answer = requests.get(f"{api.url}/model/card", headers=api.headers(), timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/markdown")
    assert answer.text.startswith(f"# Model card: {api.model_tag}") and "## Limitations" in answer.text
    assert requests.get(f"{api.url}/model/card", timeout=TIMEOUT).status_code == 401


def test_model_says_which_model_is_served_and_its_promotion(api: Service) -> None:
    body = requests.get(f"{api.url}/model", headers=api.headers(), timeout=TIMEOUT).json()
    assert body["model_tag"] == api.model_tag
    assert set(body["promotion"]) >= {"promoted", "promoted_at", "currently_promoted"}
    assert body["intervals"]["half_widths"]["0.9"] > 0
    assert body["explanations"].startswith("linear")


def test_job_results_carry_the_same_intervals_as_a_batch(api: Service) -> None:
    import time

    rows = [applicant(), STRONG]
    headers = api.headers()
    job_id = requests.post(f"{api.url}/jobs", json={"applicants": rows}, headers=headers, timeout=TIMEOUT).json()[
        "job_id"
    ]
    for _ in range(300):
        status = requests.get(f"{api.url}/jobs/status?job_id={job_id}", headers=headers, timeout=TIMEOUT).json()
        if status["status"] == "completed":
            break
        time.sleep(0.1)
    results = requests.get(f"{api.url}/jobs/results?job_id={job_id}&interval=0.8", headers=headers, timeout=TIMEOUT)
    body = results.json()
    batch = predict(api, "/predict_batch", {"applicants": rows}, "?interval=0.8").json()
    assert body["interval_level"] == 0.8
    assert body["chances"] == pytest.approx(batch["chances"], abs=1e-12)  # job chunks and a batch: not bit for bit
    for job_interval, batch_interval in zip(body["intervals"], batch["intervals"], strict=True):
        assert job_interval == pytest.approx(batch_interval, abs=1e-12)
