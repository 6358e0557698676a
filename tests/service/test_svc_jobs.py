"""The job store and runner without a server: lifecycle, ownership, leases, and surviving a reopen."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from service.errors import InvalidInputError, JobNotReadyError, NotFoundError, ServiceUnavailableError
from service.jobs import COMPLETED, FAILED, PENDING, RUNNING, JobStore
from service.runner import JobRunner

ROWS = np.arange(21, dtype=np.float64).reshape(3, 7)


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite")


def test_lifecycle_and_results(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    assert (job.status, job.n_rows, job.owner) == (PENDING, 3, "alice")
    assert store.results(job.id, "alice") == (job, None)
    claimed = store.claim(lease_s=60)
    assert claimed is not None and claimed.id == job.id and claimed.status == RUNNING
    np.testing.assert_array_equal(store.features(job.id), ROWS)
    store.complete(job.id, np.array([0.1, 0.2, 0.3]), "admissions:x")
    done, predictions = store.results(job.id, "alice")
    assert done.status == COMPLETED and done.model_tag == "admissions:x"
    assert predictions is not None
    np.testing.assert_array_equal(predictions, [0.1, 0.2, 0.3])
    assert done.as_status()["finished_at"] is not None


def test_unknown_and_foreign_jobs_are_not_found(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    with pytest.raises(NotFoundError):
        store.get("0" * 32)
    with pytest.raises(NotFoundError):
        store.get(job.id, owner="bob")


def test_a_job_is_claimed_once_until_its_lease_runs_out(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    assert store.claim(lease_s=0.2) is not None
    assert store.claim(lease_s=0.2) is None
    time.sleep(0.3)
    again = store.claim(lease_s=60)
    assert again is not None and again.id == job.id and again.attempts == 2


def test_released_job_is_pending_again(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    store.claim(lease_s=60)
    store.release(job.id)
    assert store.get(job.id).status == PENDING
    assert store.claim(lease_s=60) is not None


def test_jobs_survive_reopening_the_file(tmp_path: Path) -> None:
    first = JobStore(tmp_path / "jobs.sqlite")
    pending = first.submit("alice", ROWS)
    done = first.submit("alice", ROWS)
    first.complete(done.id, np.zeros(3), "admissions:x")
    first.close()
    second = JobStore(tmp_path / "jobs.sqlite")
    assert second.get(pending.id).status == PENDING
    assert second.results(done.id)[1] is not None
    claimed = second.claim(lease_s=60)
    assert claimed is not None and claimed.id == pending.id


def test_runner_completes_splits_and_fails(store: JobStore) -> None:
    calls: list[int] = []

    async def predict(rows: np.ndarray) -> tuple[list[float], str]:
        calls.append(len(rows))
        return rows[:, 0].tolist(), "admissions:x"

    async def broken(rows: np.ndarray) -> tuple[list[float], str]:
        raise InvalidInputError("rows the model cannot take")

    good = store.submit("alice", ROWS)
    asyncio.run(JobRunner(store, predict, chunk_rows=2).run(store.get(good.id)))
    assert calls == [2, 1]
    assert json.loads(JobRunner(store, predict, 2).results_body(good.id, "alice"))["chances"] == [0.0, 7.0, 14.0]

    bad = store.submit("alice", ROWS)
    asyncio.run(JobRunner(store, broken, chunk_rows=2).run(store.get(bad.id)))
    assert store.get(bad.id).status == FAILED
    with pytest.raises(JobNotReadyError, match="cannot take"):
        JobRunner(store, broken, 2).results_body(bad.id, "alice")


def test_unreachable_model_is_retried_then_failed(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite", max_attempts=2)

    async def down(rows: np.ndarray) -> tuple[list[float], str]:
        raise ServiceUnavailableError("batch model down")

    job = store.submit("alice", ROWS)
    runner = JobRunner(store, down, chunk_rows=2)
    first = store.claim(lease_s=60)
    assert first is not None
    asyncio.run(runner.run(first))
    assert store.get(job.id).status == RUNNING  # waiting out the retry delay, not failed
    assert store.claim(lease_s=60) is None
    store.extend(job.id, -1)  # the retry delay has passed
    second = store.claim(lease_s=60)
    assert second is not None and second.attempts == 2
    asyncio.run(runner.run(second))
    assert store.get(job.id).status == FAILED
    assert store.get(job.id).error == "batch model down"


def test_runner_loop_picks_up_jobs_and_releases_on_stop(store: JobStore) -> None:
    started = asyncio.Event()

    async def slow(rows: np.ndarray) -> tuple[list[float], str]:
        started.set()
        await asyncio.sleep(30)
        return [], "x"

    async def scenario() -> str:
        job = store.submit("alice", ROWS)
        runner = JobRunner(store, slow, chunk_rows=10)
        runner.start()
        await asyncio.wait_for(started.wait(), timeout=10)
        await runner.stop()
        return job.id

    job_id = asyncio.run(scenario())
    assert store.get(job_id).status == PENDING  # put back for the next start
