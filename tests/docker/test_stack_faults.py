"""Faults with nothing lost: the API restarted mid-job, the batch container killed mid-job, the whole
stack down and up again. Each job is held mid-flight by pausing the batch container (its requests
wait, the job stays `running`), so the fault always lands while the job runs, however fast the
machine; then the fault, then the batch service is let go and the job must finish with the model's
predictions for every row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from tests.docker.stack import Stack
from tests.docker.test_stack import TOLERANCE, applicants, expected

pytestmark = pytest.mark.docker
BIG_JOB_ROWS = 100_000


@pytest.fixture(autouse=True)
def services_running_afterwards(stack: Stack) -> Iterator[None]:
    """A fault test that fails half-way must not leave a service paused or stopped: the next test would
    wait on it until its timeout, and fail for the wrong reason."""
    yield
    for status, command in (("paused", "unpause"), ("exited", "start")):
        services = stack.compose("ps", "-a", "--status", status, "--format", "{{.Service}}").stdout.split()
        if services:
            stack.compose(command, *services)
    for name, container in stack.containers().items():
        if "Health" in container["State"]:
            stack.wait_until(lambda name=name: stack.healthy(name), f"{name} healthy again")


@contextmanager
def job_held_running(stack: Stack, rows: list[dict]) -> Iterator[str]:
    """Submit ``rows`` as a job with the batch service paused; yield its id once it is `running`."""
    stack.compose("pause", "batch")
    try:
        submitted = stack.post("/jobs", {"applicants": rows}, stack.login())
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        stack.wait_for_job(job_id, "running")
        yield job_id
    finally:
        if stack.compose("ps", "--status", "paused", "-q", "batch").stdout.strip():
            stack.compose("unpause", "batch")


def assert_completed_correctly(stack: Stack, job_id: str, rows: list[dict], model) -> None:  # type: ignore[no-untyped-def]
    stack.wait_for_job(job_id, "completed")
    results = stack.results(job_id)
    assert results["rows"] == len(rows)
    np.testing.assert_allclose(results["chances"], expected(model, rows), rtol=0, atol=TOLERANCE)


def test_restarting_the_api_mid_job_loses_nothing(stack: Stack, in_process_model) -> None:  # type: ignore[no-untyped-def]
    rows = applicants(BIG_JOB_ROWS, seed=10)
    with job_held_running(stack, rows) as job_id:
        stack.compose("restart", "api")
    stack.wait_until(lambda: stack.healthy("api"), "api healthy again")
    assert_completed_correctly(stack, job_id, rows, in_process_model)


def test_killing_the_batch_container_mid_job_loses_nothing(stack: Stack, in_process_model) -> None:  # type: ignore[no-untyped-def]
    rows = applicants(20_000, seed=11)
    with job_held_running(stack, rows) as job_id:
        stack.compose("kill", "batch")  # SIGKILL: no graceful shutdown, requests in flight are lost
    # Waiting for the service, never failed. Or already completed: docker thaws a paused container to
    # deliver SIGKILL, and in that moment the batch service may answer the request it already holds
    # (a 20,000-row block takes it a few ms); the results are then checked like any others.
    assert stack.job_status(job_id)["status"] in ("running", "pending", "completed")
    stack.compose("start", "batch")
    stack.wait_until(lambda: stack.healthy("batch"), "batch healthy again")
    assert_completed_correctly(stack, job_id, rows, in_process_model)


def test_down_and_up_keep_completed_jobs_and_results(stack: Stack, in_process_model) -> None:  # type: ignore[no-untyped-def]
    rows = applicants(500, seed=12)
    submitted = stack.post("/jobs", {"applicants": rows}, stack.login())
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert_completed_correctly(stack, job_id, rows, in_process_model)
    stopped = stack.make("stop-docker")
    assert stopped.returncode == 0, stopped.stderr
    assert stack.compose("ps", "-a", "-q").stdout.strip() == ""  # really down
    started = stack.make("run-docker", MONITORING="1")
    assert started.returncode == 0, started.stdout + started.stderr
    assert_completed_correctly(stack, job_id, rows, in_process_model)  # same secret: old tokens' owner
