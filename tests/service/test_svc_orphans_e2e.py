"""No serving process outlives ``bentoml serve`` (service/lifecycle.py), however it is killed: the
server alone or its whole process group, while its workers start or while they run a job. An orphaned
worker once kept claiming jobs from the shared database for 83 minutes (seen once in 15 kills)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.applicants import applicants
from tests.support.paths import ROOT
from tests.support.pipeline import PipelineRun
from tests.support.ports import free_port
from tests.support.service import MAX_JOB, Server, Service, service_env

pytestmark = pytest.mark.e2e
MARK = "ADMISSIONS_TEST_SERVER_MARK"  # an environment variable every process of one test server inherits


def marked(mark: str) -> list[psutil.Process]:
    """Every live process started (directly or not) by the test server carrying ``mark``."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(MARK) == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def survivors(mark: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while (alive := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.5)
    described = []
    for process in alive:
        with contextlib.suppress(psutil.Error):
            described.append(f"{process.pid} ppid={process.ppid()} {' '.join(process.cmdline())[:120]}")
            process.kill()  # do not leave them to the next test
    return described


# (when to kill, what): during the workers' start, and once they serve with a job running.
ROUNDS = [(1.5, "parent"), (3.0, "group"), (4.5, "parent"), (6.0, "group"), ("ready", "parent"), ("ready", "group")]


def test_killing_the_server_or_its_group_leaves_no_process_and_no_job_held(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    env = service_env(pipeline_run, tmp_path, ADMISSIONS_JOB_LEASE_S="4")
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", "service.api:AdmissionsAPI", "--host", "127.0.0.1"]
    jobs: list[str] = []
    headers: dict[str, str] = {}
    for when, what in ROUNDS:
        mark = uuid.uuid4().hex
        with (tmp_path / "serve.log").open("ab") as log:
            process = subprocess.Popen(
                [*command, "--port", str(port)], cwd=ROOT, env={**env, MARK: mark}, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        if when == "ready":
            server = Server(env, tmp_path / "serve.log", port=port, process=process)
            server.wait()
            headers = headers or Service(server.url, env, pipeline_run.model_tag, server).headers()
            rows = applicants(MAX_JOB, seed=len(jobs))
            answer = requests.post(f"{server.url}/jobs", json={"applicants": rows}, headers=headers, timeout=30)
            assert answer.status_code == 202, answer.text
            jobs.append(answer.json()["job_id"])
        else:
            time.sleep(float(when))
        if what == "parent":
            process.send_signal(signal.SIGKILL)
        else:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        left = survivors(mark)
        assert left == [], f"after SIGKILL of the {what} at {when}: {left}"

    # A fresh server on the same database: no orphan holds the jobs, they complete.
    server = Server(env, tmp_path / "serve.log", port=port).start()
    try:
        for job_id in jobs:
            deadline = time.monotonic() + 90
            while (status := _status(server, job_id, headers))["status"] not in ("completed", "failed"):
                assert time.monotonic() < deadline, status
                time.sleep(0.3)
            assert status["status"] == "completed", status
    finally:
        server.stop()


def _status(server: Server, job_id: str, headers: dict[str, str]) -> dict[str, str]:
    answer = requests.get(f"{server.url}/jobs/status?job_id={job_id}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())
