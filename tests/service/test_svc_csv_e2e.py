"""CSV bodies and answers end to end (issue 12): a real ``bentoml serve``, the pipeline's model."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
import requests

from core.contract import FEATURE_NAMES
from tests.support.applicants import applicant, applicants
from tests.support.service import MAX_CSV_BATCH, MAX_CSV_JOB, Service, model_predictions

pytestmark = pytest.mark.e2e
TIMEOUT = 30
CSV = "text/csv"


def csv_body(rows: list[dict[str, Any]]) -> bytes:
    lines = [",".join(FEATURE_NAMES)] + [",".join(str(row[name]) for name in FEATURE_NAMES) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def send(api: Service, path: str, body: bytes, media: str = CSV, accept: str | None = None) -> requests.Response:
    headers = {**api.headers(), "Content-Type": media, **({"Accept": accept} if accept else {})}
    return requests.post(f"{api.url}{path}", data=body, headers=headers, timeout=TIMEOUT)


def table(answer: requests.Response) -> list[dict[str, float]]:
    """The numbers of a CSV answer, by column (the prediction ids are checked apart)."""
    assert answer.headers["content-type"].startswith(CSV), answer.headers
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    return [{k: float(v) for k, v in row.items() if k != "prediction_id"} for row in rows]


def test_a_csv_batch_gets_the_chances_of_the_same_json_batch(api: Service, pipeline_run: Any) -> None:
    rows = applicants(MAX_CSV_BATCH, seed=31)
    answer = send(api, "/predict_batch", csv_body(rows))
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-tag"] == pipeline_run.model_tag and answer.headers["x-interval-level"]
    got = table(answer)
    as_json = send(api, "/predict_batch", csv_body(rows), accept="application/json").json()
    assert [row["chance"] for row in got] == as_json["chances"]  # the same doubles, whatever the format
    assert [[row["interval_low"], row["interval_high"]] for row in got] == as_json["intervals"]
    assert as_json["chances"] == pytest.approx(model_predictions(pipeline_run, rows), abs=1e-9)
    json_in = requests.post(
        f"{api.url}/predict_batch",
        json={"applicants": rows[:3]},
        headers={**api.headers(), "Accept": CSV},
        timeout=TIMEOUT,
    )
    assert [row["chance"] for row in table(json_in)] == as_json["chances"][:3]


def test_csv_without_intervals_has_only_the_chance_column(api: Service) -> None:
    answer = send(api, "/predict_batch?interval=none", csv_body([applicant()]))
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines()[0] == "prediction_id,chance" and "x-interval-level" not in answer.headers


def test_a_bad_csv_row_is_a_400_naming_its_line_and_column(api: Service) -> None:
    rows = [applicant(), applicant(), applicant(cgpa=12)]
    answer = send(api, "/predict_batch", csv_body(rows))
    assert answer.status_code == 400, answer.text
    assert answer.json()["problems"] == ["line 4, column cgpa: '12' is not between 0 and 10"]
    header = send(api, "/jobs", b"gre_score,cgpa\n1,2\n")
    assert header.status_code == 400 and "missing toefl_score" in header.json()["error"]


def test_csv_limits_are_rows_then_bytes(api: Service) -> None:
    over = send(api, "/predict_batch", csv_body([applicant()] * (MAX_CSV_BATCH + 1)))
    assert over.status_code == 400 and f"at most {MAX_CSV_BATCH}" in over.json()["error"]
    padded = csv_body([applicant()]) + b"\n" * (MAX_CSV_JOB * 64 + 8 * 1024)
    assert send(api, "/jobs", padded).status_code == 413


def test_csv_is_refused_where_it_is_not_taken(api: Service) -> None:
    for path in ("/predict", "/login"):
        assert send(api, path, csv_body([applicant()])).status_code == 415
    answer = send(api, "/predict_batch", b"x", media="text/plain")
    assert answer.status_code == 415 and "text/csv" in answer.json()["error"]


def test_explanations_come_with_json_answers_only(api: Service) -> None:
    body = csv_body([applicant(), applicant(gre_score=300)])
    explained = send(api, "/predict_batch?explain=true", body, accept="application/json")
    assert explained.status_code == 200, explained.text
    assert len(explained.json()["explanations"]) == 2
    refused = send(api, "/predict_batch?explain=true", body)
    assert refused.status_code == 400 and "JSON answers only" in refused.json()["error"]


def test_a_csv_job_completes_and_its_results_download_as_csv(api: Service, pipeline_run: Any) -> None:
    rows = applicants(MAX_CSV_JOB, seed=41)
    submitted = send(api, "/jobs", csv_body(rows))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert submitted.json()["rows"] == MAX_CSV_JOB
    deadline = time.monotonic() + 60
    headers = api.headers()
    while (status := requests.get(f"{api.url}/jobs/status?job_id={job_id}", headers=headers, timeout=TIMEOUT).json())[
        "status"
    ] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status["status"] == "completed", status
    as_json = requests.get(f"{api.url}/jobs/results?job_id={job_id}", headers=headers, timeout=TIMEOUT).json()
    assert as_json["chances"] == pytest.approx(model_predictions(pipeline_run, rows), abs=1e-9)
    for how in ({"format": "csv"}, {}):
        answer = requests.get(
            f"{api.url}/jobs/results",
            params={"job_id": job_id, **how},
            headers={**headers, **({} if how else {"Accept": CSV})},
            timeout=TIMEOUT,
        )
        assert answer.status_code == 200, answer.text
        assert f'filename="{job_id}.csv"' in answer.headers["content-disposition"]
        assert [row["chance"] for row in table(answer)] == as_json["chances"]
