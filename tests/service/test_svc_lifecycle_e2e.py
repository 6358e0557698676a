"""Servers started for one test each: restarts, the separate-process topology, refusing to start,
and a schema-driven run (schemathesis) against the OpenAPI document."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import pytest
import requests

from service.jobs import JobStore
from tests.support.applicants import applicant, applicants
from tests.support.service import ROOT, Server, Service, model_predictions, service_env

pytestmark = pytest.mark.e2e


def wait_completed(url: str, job_id: str, headers: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = requests.get(f"{url}/jobs/status?job_id={job_id}", headers=headers, timeout=30).json()
        if body["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_jobs_survive_a_restart(pipeline_run: Any, tmp_path: Path) -> None:
    env = service_env(pipeline_run, tmp_path, ADMISSIONS_API_WORKERS="1")
    rows = applicants(200, seed=5)
    expected = model_predictions(pipeline_run, rows)
    first = Server(env, tmp_path / "serve.log").start()
    try:
        service = Service(first.url, env, pipeline_run.model_tag, first)
        headers = service.headers()
        submitted = requests.post(f"{first.url}/jobs", json={"applicants": rows}, headers=headers, timeout=30)
        assert submitted.status_code == 202
        job_id = submitted.json()["job_id"]
    finally:
        first.stop()

    # While the service is down, a job arrives that nobody has run yet (as if submitted just before a crash).
    owner = jwt.decode(headers["Authorization"].split()[1], options={"verify_signature": False})["sub"]
    store = JobStore(Path(env["ADMISSIONS_JOBS_DB"])).open()
    waiting = store.submit(owner, np.array([[applicant()[k] for k in applicant()]], dtype=float))
    store.close()

    second = Server(env, tmp_path / "serve.log", port=first.port).start()
    try:
        # The token issued before the restart is still valid: same secret, and tokens are stateless.
        assert wait_completed(second.url, job_id, headers)["status"] == "completed"
        results = requests.get(f"{second.url}/jobs/results?job_id={job_id}", headers=headers, timeout=30).json()
        assert results["chances"] == pytest.approx(expected, abs=1e-9)
        assert wait_completed(second.url, waiting.id, headers)["status"] == "completed"
    finally:
        second.stop()


@pytest.mark.parametrize(("secret", "message"), [(None, "JWT_SECRET_KEY is not set"), ("short", "at least 32")])
def test_refuses_to_start_without_a_proper_secret(
    pipeline_run: Any, tmp_path: Path, secret: str | None, message: str
) -> None:
    env = service_env(pipeline_run, tmp_path)
    env.pop("JWT_SECRET_KEY")
    if secret:
        env["JWT_SECRET_KEY"] = secret
    command = [sys.executable, "-m", "bentoml", "serve", "service.api:AdmissionsAPI", "--port", "1"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert f"error: {message}" in result.stderr or message in result.stderr
    assert "Traceback" not in result.stderr


def test_dev_mode_starts_with_a_loud_warning(pipeline_run: Any, tmp_path: Path) -> None:
    env = service_env(pipeline_run, tmp_path, ADMISSIONS_DEV_MODE="1", ADMISSIONS_API_WORKERS="2")
    env.pop("JWT_SECRET_KEY")
    server = Server(env, tmp_path / "serve.log").start()
    try:
        service = Service(server.url, env, pipeline_run.model_tag, server)
        headers = service.headers()
        # Two workers share the one generated secret: every request verifies whichever worker answers.
        for _ in range(8):
            answer = requests.post(f"{server.url}/predict", json=applicant(), headers=headers, timeout=30)
            assert answer.status_code == 200
        assert "EPHEMERAL JWT secret" in server.tail(400)
    finally:
        server.stop()


def test_schemathesis_finds_no_server_errors(api: Service, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{api.url}/docs.json", "--url", api.url,
        "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "1", "--workers", "2",
        "--header", f"Authorization: Bearer {api.token()}", "--request-timeout", "30",
        "--generation-database", "none", "--no-color",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) >= 8, output[-4000:]  # /login, /predict, /predict_batch, /jobs + health
    counts = re.search(r"(\d+) generated, (\d+) passed", output)  # warnings (404s for made-up job ids) are fine
    assert counts and counts.group(1) == counts.group(2) and "failed" not in output.lower(), output[-3000:]
