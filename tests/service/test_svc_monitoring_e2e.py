"""The production loop through a real ``bentoml serve``: every answer logged with an id, outcomes recorded
against it, realised figures and the retrain signal served, and what a SIGKILL of the workers costs."""

from __future__ import annotations

import csv
import io
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from service import predlog
from tests.support.applicants import applicant, applicants
from tests.support.pipeline import PipelineRun
from tests.support.service import Server, Service, service_env

pytestmark = pytest.mark.e2e
TIMEOUT = 30
FEATURES = ["gre_score", "toefl_score", "university_rating", "sop", "lor", "cgpa", "research"]


def post(api: Service, path: str, headers: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(f"{api.url}{path}", headers=headers, timeout=TIMEOUT, **kwargs)


def wait_until(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def test_answers_carry_ids_that_take_outcomes_and_feed_the_realised_figures(api: Service) -> None:
    headers = api.headers()
    single = post(api, "/predict", headers, json=applicant()).json()
    batch = post(api, "/predict_batch", headers, json={"applicants": applicants(3, seed=5)}).json()
    body = ",".join(FEATURES) + "\n" + "".join(",".join(str(a[n]) for n in FEATURES) + "\n" for a in applicants(2))
    as_csv = post(api, "/predict_batch", {**headers, "Content-Type": "text/csv"}, data=body.encode())
    csv_ids = [row["prediction_id"] for row in csv.DictReader(io.StringIO(as_csv.text))]
    ids = [single["prediction_id"], *batch["prediction_ids"], *csv_ids]
    assert len(set(ids)) == 6 and all(predlog.parse_id(pid) for pid in ids)
    outcomes = {"outcomes": [{"prediction_id": pid, "outcome": 0.5} for pid in ids[:5]]}
    recorded = wait_until(  # the log is written every half second, off the request path
        lambda: (answer := post(api, "/outcomes", headers, json=outcomes)).status_code != 404 and answer,
        "the answers are in the log",
    )
    assert recorded.status_code == 200 and recorded.json() == {"recorded": 5}, recorded.text
    as_text = f"prediction_id,outcome\n{ids[5]},1\n".encode()
    assert post(api, "/outcomes", {**headers, "Content-Type": "text/csv"}, data=as_text).json() == {"recorded": 1}
    again = post(api, "/outcomes", headers, json={"outcomes": [{"prediction_id": ids[0], "outcome": 0.7}]})
    assert again.status_code == 409 and again.json()["row"] == 1
    unknown = post(api, "/outcomes", headers, json={"outcomes": [{"prediction_id": "abc123-0", "outcome": 0.7}]})
    assert unknown.status_code == 404 and "abc123" in unknown.json()["error"]

    def realised() -> dict[str, Any] | None:
        snapshot = requests.get(f"{api.url}/monitoring", headers=headers, timeout=TIMEOUT).json()
        figures = snapshot["models"].get(api.model_tag, {}).get("realised", {}).get("1d", {})
        return figures if figures.get("outcomes", 0) >= 6 else None

    figures = wait_until(realised, "the monitor has counted the outcomes", timeout=40)  # refreshed every 15 s
    assert "too few to judge" in figures["warning"] and 0 <= figures["rmse"] <= 1
    model = requests.get(f"{api.url}/model", headers=headers, timeout=TIMEOUT).json()
    signal = model["monitoring"]  # the shared server's other tests send random applicants: it may drift
    assert signal["retrain_recommended"] is bool(signal["reasons"]) and signal["details"] == "GET /monitoring"
    metrics = requests.get(f"{api.url}/metrics", timeout=TIMEOUT).text
    assert f'admissions_realised_outcomes{{model_tag="{api.model_tag}",window="1d"}}' in metrics


def test_a_job_s_results_carry_ids_of_its_logged_rows(api: Service) -> None:
    headers = api.headers()
    job_id = post(api, "/jobs", headers, json={"applicants": applicants(4, seed=9)}).json()["job_id"]
    results = wait_until(
        lambda: (r := requests.get(f"{api.url}/jobs/results?job_id={job_id}", headers=headers, timeout=30)).ok and r,
        "the job completed",
        timeout=90,
    ).json()
    assert results["prediction_ids"] == [f"{job_id}-{row}" for row in range(4)]
    outcome = {"outcomes": [{"prediction_id": results["prediction_ids"][3], "outcome": 0.9}]}
    assert post(api, "/outcomes", headers, json=outcome).json() == {"recorded": 1}


def test_a_sigkill_of_the_workers_loses_at_most_the_last_half_second(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    """Predictions answered more than the flush interval before a SIGKILL are in the log; at most those
    of the last interval (here: the ones sent just before the kill) are lost."""
    server = Server(service_env(pipeline_run, tmp_path), tmp_path / "serve.log").start()
    try:
        api = Service(server.url, server.env, pipeline_run.model_tag, server)
        headers = api.headers()
        early = [post(api, "/predict", headers, json=applicant(cgpa=8 + i / 100)).json() for i in range(100)]
        time.sleep(predlog.FLUSH_S * 4)  # written by now
        late = [post(api, "/predict", headers, json=applicant(cgpa=9 + i / 100)).json() for i in range(20)]
        assert server.process is not None
        for worker in psutil.Process(server.process.pid).children(recursive=True):
            worker.send_signal(signal.SIGKILL)
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "jobs.sqlite") as db:
        chunks = db.execute("SELECT request_id, n_rows FROM prediction_log").fetchall()
    logged = {f"{request_id}-{row}" for request_id, rows in chunks for row in range(rows)}
    answered_early = {answer["prediction_id"] for answer in early}
    answered_late = {answer["prediction_id"] for answer in late}
    assert answered_early <= logged  # nothing older than the flush interval is lost
    assert logged <= answered_early | answered_late  # and nothing is logged that was not answered
