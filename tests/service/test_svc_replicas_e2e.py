"""Jobs shared by two API servers (replicas) through one real PostgreSQL database (issue 12).

Each server is a whole `bentoml serve` (its API worker and batch model service); they share the users
file, the JWT secret and ``ADMISSIONS_JOBS_URL``, as replicas behind a load balancer would.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support.applicants import applicants
from tests.support.pipeline import PipelineRun
from tests.support.postgres import PostgresServer
from tests.support.service import Server, Service, model_predictions, service_env

pytestmark = pytest.mark.e2e


def counted_rows(service: Service) -> float:
    text = requests.get(f"{service.url}/metrics", timeout=30).text
    return sum(float(v) for v in re.findall(r'admissions_predictions_total\{endpoint="jobs",[^}]*\} ([0-9.e+]+)', text))


def finished(service: Service, job_id: str, headers: dict[str, str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = requests.get(
            f"{service.url}/jobs/status?job_id={job_id}", headers=headers, timeout=30
        ).json()
        if body["status"] in ("completed", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_two_replicas_share_jobs_and_finish_a_killed_replicas_job(
    pipeline_run: PipelineRun, tmp_path: Path, postgres: PostgresServer
) -> None:
    env = service_env(
        pipeline_run,
        tmp_path,
        ADMISSIONS_JOBS_URL=postgres.new_database(),
        ADMISSIONS_API_WORKERS="1",
        ADMISSIONS_JOB_LEASE_S="3",
        ADMISSIONS_MAX_ACTIVE_JOBS="1000",  # 200 jobs from one user at once, on purpose
    )
    # A BentoML home each, as on two hosts: a server empties its home's metrics folder when it starts.
    own_home = tmp_path / "second-home"
    shutil.copytree(pipeline_run.bentoml_home / "models", own_home / "models")
    first = Server(env, tmp_path / "first.log").start()
    second = Server({**env, "BENTOML_HOME": str(own_home)}, tmp_path / "second.log").start()
    try:
        replicas = [Service(s.url, env, pipeline_run.model_tag, s) for s in (first, second)]
        headers = replicas[0].headers()  # one token works on both: same secret

        # 200 jobs, submitted alternately: every one completes exactly once, readable from either replica.
        batches = [applicants(5 + i % 7, seed=100 + i) for i in range(200)]
        ids = []
        for i, rows in enumerate(batches):
            answer = requests.post(
                f"{replicas[i % 2].url}/jobs", json={"applicants": rows}, headers=headers, timeout=30
            )
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["job_id"])
        flat = [row for rows in batches for row in rows]
        expected = model_predictions(pipeline_run, flat)
        got: list[float] = []
        for i, job_id in enumerate(ids):
            reader = replicas[(i + 1) % 2]  # read from the replica it was not submitted to
            status = finished(reader, job_id, headers)
            assert (status["status"], status["attempts"]) == ("completed", 1), status
            results = requests.get(f"{reader.url}/jobs/results?job_id={job_id}", headers=headers, timeout=30)
            got.extend(results.json()["chances"])
        assert got == pytest.approx(expected, abs=1e-9)
        assert sum(counted_rows(r) for r in replicas) == len(flat)  # each row predicted once, across both

        # A replica killed mid-job: the other takes the job over once the lease has run out.
        second.stop()
        batch = next(
            p for p in psutil.Process(first.process.pid).children(recursive=True)  # type: ignore[union-attr]
            if "admissions_batch" in " ".join(p.cmdline())
        )  # fmt: skip
        batch.send_signal(signal.SIGSTOP)
        rows = applicants(300, seed=7)
        answer = requests.post(f"{first.url}/jobs", json={"applicants": rows}, headers=headers, timeout=30)
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + 30
        while (
            requests.get(f"{first.url}/jobs/status?job_id={job_id}", headers=headers, timeout=30).json()["status"]
            != "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        crashed = psutil.Process(first.process.pid)  # type: ignore[union-attr]
        for process in [*crashed.children(recursive=True), crashed]:  # a crash: nothing shuts down cleanly
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        second.start()
        status = finished(replicas[1], job_id, headers)
        assert (status["status"], status["attempts"]) == ("completed", 2), status
        results = requests.get(f"{second.url}/jobs/results?job_id={job_id}", headers=headers, timeout=30).json()
        assert results["chances"] == pytest.approx(model_predictions(pipeline_run, rows), abs=1e-9)
    finally:
        first.stop()
        second.stop()
