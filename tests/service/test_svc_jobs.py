"""The job store and runner without a server: lifecycle, ownership, leases, and surviving a reopen."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.errors import (
    InvalidInputError,
    JobConflictError,
    JobNotReadyError,
    JobStoreUnavailableError,
    NotFoundError,
    ServiceUnavailableError,
    TooManyRequestsError,
)
from service.jobs import COMPLETED, FAILED, PENDING, RUNNING, Job, JobStore
from service.middleware.memory_budget import Budget
from service.runner import JOB_BYTES_PER_ROW, JobRunner, results_json

ROWS = np.arange(21, dtype=np.float64).reshape(3, 7)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    """Every store test runs on a SQLite file and on a real PostgreSQL server (tests/support/postgres.py)."""
    if request.param == "sqlite":
        return JobStore(tmp_path / "jobs.sqlite").open()
    return JobStore(request.getfixturevalue("postgres").new_database()).open()


def test_lifecycle_and_results(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    assert (job.status, job.n_rows, job.owner) == (PENDING, 3, "alice")
    assert store.results(job.id, "alice") == (job, None)
    claimed = store.claim(lease_s=60)
    assert claimed is not None and claimed.id == job.id and claimed.status == RUNNING
    np.testing.assert_array_equal(store.features(job.id), ROWS)
    assert store.complete(claimed, np.array([0.1, 0.2, 0.3]), "admissions:x")
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
    """A 2 s lease: a 0.2 s one ran out between two claims on the loaded CI machine (PostgreSQL)."""
    job = store.submit("alice", ROWS)
    assert store.claim(lease_s=2) is not None
    assert store.claim(lease_s=2) is None
    time.sleep(2.2)
    again = store.claim(lease_s=60)
    assert again is not None and again.id == job.id and again.attempts == 2


def test_released_job_is_pending_again(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    claimed = store.claim(lease_s=60)
    assert claimed is not None
    store.release(claimed)
    assert store.get(job.id).status == PENDING
    assert store.claim(lease_s=60) is not None


def test_jobs_survive_reopening_the_file(tmp_path: Path) -> None:
    first = JobStore(tmp_path / "jobs.sqlite").open()
    done = first.submit("alice", ROWS)
    claimed = first.claim(lease_s=60)
    assert claimed is not None
    first.complete(claimed, np.zeros(3), "admissions:x")
    pending = first.submit("alice", ROWS)
    first.close()
    second = JobStore(tmp_path / "jobs.sqlite").open()
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
    asyncio.run(JobRunner(store, predict, chunk_rows=2).run(claim(store)))
    assert calls == [2, 1]
    assert json.loads(results_json(*JobRunner(store, predict, 2).results(good.id, "alice")))["chances"] == [
        0.0,
        7.0,
        14.0,
    ]

    bad = store.submit("alice", ROWS)
    asyncio.run(JobRunner(store, broken, chunk_rows=2).run(claim(store)))
    assert store.get(bad.id).status == FAILED
    with pytest.raises(JobNotReadyError, match="cannot take"):
        JobRunner(store, broken, 2).results(bad.id, "alice")


def claim(store: JobStore, lease_s: float = 60) -> Job:
    job = store.claim(lease_s=lease_s)
    assert job is not None
    return job


async def down(rows: np.ndarray) -> tuple[list[float], str]:
    raise ServiceUnavailableError("batch model down")


def test_an_outage_defers_the_job_with_a_note_and_without_using_an_attempt(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    asyncio.run(JobRunner(store, down, chunk_rows=2, first_retry_s=30).run(claim(store)))
    deferred = store.get(job.id)
    assert (deferred.status, deferred.attempts) == (PENDING, 0)
    assert deferred.note is not None and "batch model down" in deferred.note
    assert deferred.as_status()["next_attempt_at"] is not None
    assert store.claim(lease_s=60) is None  # not before its retry time


def test_an_outage_longer_than_the_window_fails_the_job_with_the_reason(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    runner = JobRunner(store, down, chunk_rows=2, retry_window_s=0.3, first_retry_s=0.01)
    asyncio.run(runner.run(claim(store)))
    assert store.get(job.id).status == PENDING
    time.sleep(0.35)
    asyncio.run(runner.run(claim(store)))
    failed = store.get(job.id)
    assert failed.status == FAILED and failed.error is not None
    assert "batch model down" in failed.error and "retry window" in failed.error


def test_the_lease_is_renewed_while_a_job_runs_so_nobody_else_takes_it(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    others: list[Job | None] = []

    async def slow(rows: np.ndarray) -> tuple[list[float], str]:
        for _ in range(8):  # 1.2 s, three times the lease
            await asyncio.sleep(0.15)
            others.append(await asyncio.to_thread(store.claim, 0.4))
        return rows[:, 0].tolist(), "admissions:x"

    asyncio.run(JobRunner(store, slow, chunk_rows=10, lease_s=0.4).run(claim(store, lease_s=0.4)))
    assert others == [None] * 8
    done = store.get(job.id)
    assert (done.status, done.attempts) == (COMPLETED, 1)


def test_an_attempt_that_lost_its_lease_stores_nothing(store: JobStore) -> None:
    job = store.submit("alice", ROWS)
    stale = claim(store, lease_s=0.05)
    time.sleep(0.1)
    fresh = claim(store)
    assert fresh.attempts == 2
    assert not store.extend(stale, 60)
    assert not store.complete(stale, np.zeros(3), "admissions:stale")
    assert store.complete(fresh, np.ones(3), "admissions:fresh")
    assert not store.fail(stale, "late")
    done, predictions = store.results(job.id)
    assert done.model_tag == "admissions:fresh" and predictions is not None and predictions.tolist() == [1, 1, 1]


def test_a_failed_job_can_be_retried_by_its_owner_only(store: JobStore) -> None:
    job = store.submit("u-alice", ROWS)
    assert store.fail(claim(store), "model broke")
    with pytest.raises(NotFoundError):
        store.retry(job.id, "u-bob")
    retried = store.retry(job.id, "u-alice")
    assert (retried.status, retried.error, retried.attempts) == (PENDING, None, 0)
    with pytest.raises(JobConflictError, match="only a failed job"):
        store.retry(job.id, "u-alice")


def test_crashed_attempts_are_limited(store: JobStore) -> None:
    store.max_attempts = 2
    job = store.submit("alice", ROWS)
    for _ in range(2):
        claim(store, lease_s=0.01)
        time.sleep(0.02)
    assert store.claim(lease_s=60) is None
    failed = store.get(job.id)
    assert failed.status == FAILED and failed.error is not None and "gave up after 2 attempts" in failed.error


@pytest.mark.timeout(120)  # once seen hanging on a loaded CI machine: fail with a traceback, not after 600 s
def test_the_job_loop_survives_database_errors_and_reports_them(store: JobStore) -> None:
    """A failing claim (the database) must not end the loop: it backs off, reports, and recovers."""
    real_claim = store.claim
    failures = iter([True, True])

    def flaky_claim(lease_s: float) -> Job | None:
        if next(failures, False):
            raise JobStoreUnavailableError("jobs database x is not usable: disk I/O error")
        return real_claim(lease_s)

    async def predict(rows: np.ndarray) -> tuple[list[float], str]:
        return rows[:, 0].tolist(), "admissions:x"

    async def scenario() -> tuple[list[bool], str]:
        job = store.submit("alice", ROWS)
        runner = JobRunner(store, predict, chunk_rows=10)
        store.claim = flaky_claim  # type: ignore[method-assign]
        runner.start()
        seen = []
        for _ in range(100):
            await asyncio.sleep(0.05)
            seen.append(runner.problem is None)  # what /readyz and the job routes go by
            if store.get(job.id).status == COMPLETED:
                break
        await asyncio.wait_for(runner.stop(), timeout=30)
        return seen, store.get(job.id).status

    seen, status = asyncio.run(scenario())
    assert False in seen and seen[-1] is True
    assert status == COMPLETED


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


def test_a_stop_that_comes_as_a_job_completes_stops_the_loop(tmp_path: Path) -> None:
    """A stop asked while the runner wound up a finished job (cancelling its lease renewal) was taken
    for the renewal's own cancellation and swallowed: the loop polled on and the worker's shutdown
    waited forever (seen as a 30 s stall of the database-errors test on a loaded machine)."""
    store = JobStore(tmp_path / "jobs.sqlite").open()

    async def predict(rows: np.ndarray) -> tuple[list[float], str]:
        return rows[:, 0].tolist(), "admissions:x"

    def runner(ask_stop: Callable[[], None]) -> JobRunner:
        return JobRunner(store, predict, chunk_rows=10, completed=lambda job, n: ask_stop())

    assert _a_stop_returns(store, runner), "the runner did not stop within 5 s"


def test_a_stop_that_comes_as_a_lease_is_lost_stops_the_loop(tmp_path: Path) -> None:
    """The same for an attempt that ends because its lease was lost: the stop must not pass for the
    attempt's own end."""
    store = JobStore(tmp_path / "jobs.sqlite").open()

    async def predict(rows: np.ndarray) -> tuple[list[float], str]:
        await asyncio.sleep(30)  # never answers: the lease renewal ends the attempt
        return [], "x"

    def runner(ask_stop: Callable[[], None]) -> JobRunner:
        def lost(job: Job, lease_s: float) -> bool:  # the stop is asked just before the renewal says "lost"
            ask_stop()
            return False

        store.extend = lost  # type: ignore[method-assign]
        return JobRunner(store, predict, chunk_rows=10, lease_s=0.4)

    assert _a_stop_returns(store, runner), "the runner did not stop within 5 s"


def _a_stop_returns(store: JobStore, runner_for: Callable[[Callable[[], None]], JobRunner]) -> bool:
    """Start the runner ``runner_for(ask_stop)`` makes on one job; whether the stop its hooks ask for
    (``ask_stop()``, from the loop or a thread) returns within 5 s."""

    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        def ask_stop() -> None:
            loop.call_soon_threadsafe(lambda: stopping.append(loop.create_task(runner.stop())))

        runner = runner_for(ask_stop)
        store.submit("alice", ROWS)
        runner.start()
        while not stopping:
            await asyncio.sleep(0.01)
        done, _ = await asyncio.wait(stopping, timeout=5)
        if not done:
            await runner.stop()  # a second stop lands: the test ends either way
        return bool(done)

    return asyncio.run(scenario())


def test_a_stuck_attempt_stops_renewing_its_lease_and_waits_like_an_outage(store: JobStore) -> None:
    """A chunk that is never answered (a dead batch service that does not refuse): the attempt stops
    renewing the lease after ``stall_s`` and the job goes back to pending with a note, not held."""
    job = store.submit("alice", ROWS)
    renewals: list[bool] = []
    real_extend = store.extend

    def counting_extend(job: Job, lease_s: float) -> bool:
        renewals.append(True)
        return real_extend(job, lease_s)

    store.extend = counting_extend  # type: ignore[method-assign]

    async def never(rows: np.ndarray) -> tuple[list[float], str]:
        await asyncio.sleep(3600)
        return [], "x"

    runner = JobRunner(store, never, chunk_rows=10, lease_s=0.2, stall_s=0.5)
    asyncio.run(asyncio.wait_for(runner.run(claim(store, lease_s=0.2)), timeout=10))
    waiting = store.get(job.id)
    assert waiting.status == PENDING and waiting.attempts == 0
    assert "waiting for the model service: no chunk was answered" in (waiting.note or ""), waiting.note
    assert 2 <= len(renewals) <= 11  # every 0.05 s while it could still finish (0.5 s), then never again


def test_an_orphaned_worker_puts_its_job_back_claims_nothing_and_leaves(store: JobStore) -> None:
    """The server of this worker dies mid-job (lifecycle.supervised turns False): the lease is not
    renewed, the job is pending again for a live worker at once, the loop claims nothing more."""
    first = store.submit("alice", ROWS)
    second = store.submit("alice", ROWS)
    parent_alive = [True]
    left: list[bool] = []
    started = asyncio.Event()

    async def slow(rows: np.ndarray) -> tuple[list[float], str]:
        started.set()
        await asyncio.sleep(3600)
        return [], "x"

    async def scenario() -> None:
        runner = JobRunner(
            store,
            slow,
            chunk_rows=10,
            lease_s=0.2,
            supervised=lambda: parent_alive[0],
            orphaned=lambda: left.append(True),
        )
        runner.start()
        await asyncio.wait_for(started.wait(), timeout=10)
        parent_alive[0] = False
        assert runner._task is not None
        await asyncio.wait_for(runner._task, timeout=10)  # the loop ends by itself

    asyncio.run(scenario())
    assert left == [True]
    assert [store.get(first.id).status, store.get(second.id).status] == [PENDING, PENDING]
    assert store.get(first.id).attempts == 0  # released, not counted as a crash


def test_the_database_is_private_and_many_processes_can_create_it_at_once(tmp_path: Path) -> None:
    """Issue 11/13: two API workers on a fresh file once died with 'table jobs already exists'."""
    import multiprocessing
    import stat

    path = tmp_path / "fresh" / "jobs.sqlite"
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        pool.map(_open_store, [path] * 12)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert JobStore(path).open().submit("u-1", ROWS).status == PENDING


def _open_store(path: Path) -> None:
    JobStore(path).open().close()


def test_a_first_version_jobs_file_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "jobs.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE jobs (id VARCHAR(32) PRIMARY KEY, owner VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL,"
            " n_rows INTEGER NOT NULL, n_features INTEGER NOT NULL, features BLOB NOT NULL, results BLOB,"
            " model_tag VARCHAR(128), error TEXT, attempts INTEGER NOT NULL, created_at FLOAT NOT NULL,"
            " started_at FLOAT, finished_at FLOAT, lease_until FLOAT)"
        )
        conn.execute(
            "INSERT INTO jobs VALUES ('a', 'alice', 'pending', 3, 7, ?, NULL, NULL, NULL, 0, 1.0, NULL, NULL, NULL)",
            (ROWS.tobytes(),),
        )
        conn.execute(  # finished before the upgrade: its results are in its row
            "INSERT INTO jobs VALUES ('b', 'alice', 'completed', 3, 7, ?, ?, 'm:1', NULL, 1, 1.0, 1.0, 2.0, NULL)",
            (ROWS.tobytes(), np.arange(3.0).tobytes()),
        )
    store = JobStore(path).open()
    np.testing.assert_array_equal(store.features("a"), ROWS)  # stored in the row, read after the upgrade
    np.testing.assert_array_equal(store.results("b", "alice")[1], np.arange(3.0))
    job = claim(store)
    assert job.id == "a" and store.complete(job, np.zeros(3), "admissions:x")
    np.testing.assert_array_equal(store.results("a", "alice")[1], np.zeros(3))


def test_features_stored_as_float64_rows_by_the_previous_version_are_read(store: JobStore) -> None:
    import sqlalchemy as sa

    from service.jobs import COLUMNS, FEATURES, JOB_DATA

    job = store.submit("alice", ROWS)
    with store.engine.begin() as conn:  # as the previous version stored them: raw float64 rows
        conn.execute(JOB_DATA.update().where(JOB_DATA.c.job_id == job.id).values(kind=FEATURES, data=ROWS.tobytes()))
        assert conn.execute(sa.select(sa.func.count()).where(JOB_DATA.c.kind == COLUMNS)).scalar_one() == 0
    np.testing.assert_array_equal(store.features(job.id), ROWS)


def test_concurrent_claims_take_each_job_once(store: JobStore) -> None:
    """Eight threads claiming from 40 jobs at once: every job is taken exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    ids = {store.submit("u-1", ROWS).id for _ in range(40)}

    def take_all(_: int) -> list[str]:
        taken = []
        while (job := store.claim(lease_s=60)) is not None:
            taken.append(job.id)
        return taken

    with ThreadPoolExecutor(8) as pool:
        taken = [job_id for batch in pool.map(take_all, range(8)) for job_id in batch]
    assert sorted(taken) == sorted(ids)


def test_a_database_url_is_named_without_its_password(postgres: Any) -> None:
    url = postgres.new_database().replace("admissions@", "admissions:s3cret@")
    store = JobStore(url)
    assert "s3cret" not in store.path and "***" in store.path


def test_an_unreachable_database_is_one_sentence() -> None:
    with pytest.raises(JobStoreUnavailableError, match=r"jobs database postgresql://x:\*\*\*@127.0.0.1:9/db cannot"):
        JobStore("postgresql://x:pw@127.0.0.1:9/db").open()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://admissions@127.0.0.1:9/db?password=s3cret&sslmode=require",
        "postgresql://admissions:s3cret@127.0.0.1:9/db?sslpassword=s3cret",
        "postgresql://admissions:s3cret@127.0.0.1:notaport/db?password=s3cret",
        "nosuchdb://admissions:s3cret@127.0.0.1/db?password=s3cret",
    ],
)
def test_a_password_is_never_printed_wherever_the_url_holds_it(url: str) -> None:
    """The query string's password was printed in the start-up error (SQLAlchemy hides only user:pass)."""
    with pytest.raises(JobStoreUnavailableError) as refused:
        JobStore(url).open()
    assert "s3cret" not in refused.value.message and "***" in refused.value.message
    assert "ADMISSIONS_JOBS_URL" in refused.value.message or "cannot be opened" in refused.value.message


def test_a_sqlite_url_is_a_private_file_like_the_default(tmp_path: Path) -> None:
    import stat

    path = tmp_path / "by-url" / "jobs.sqlite"
    store = JobStore(f"sqlite:///{path}").open()
    assert store.file == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.submit("u-1", ROWS).status == PENDING


def test_a_database_file_deleted_while_serving_comes_back_private_and_usable(tmp_path: Path) -> None:
    """It came back empty, 0644 and without tables: every job route 503 until a restart. The jobs in
    the deleted file are gone with it (an operator deleted them); new ones work at once."""
    import stat

    path = tmp_path / "jobs.sqlite"
    store = JobStore(path).open()
    old = store.submit("u-1", ROWS)
    path.unlink()
    store.check()  # what /readyz does
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(NotFoundError):
        store.get(old.id)
    assert store.submit("u-1", ROWS).status == PENDING
    other = JobStore(path).open()  # another worker sees the same new file
    assert other.claim(60) is not None and other.claim(60) is None  # the one new job, once


def test_one_user_cannot_queue_more_than_the_active_limit(store: JobStore) -> None:
    for _ in range(3):
        store.submit("u-alice", ROWS, max_active=3)
    with pytest.raises(TooManyRequestsError, match="3 jobs waiting or running") as refused:
        store.submit("u-alice", ROWS, max_active=3)
    assert refused.value.headers() == {"Retry-After": "5"}
    store.submit("u-bob", ROWS, max_active=3)  # others are not affected
    job = claim(store)
    assert store.complete(job, np.zeros(3), "admissions:x")  # one finished: alice may submit again
    store.submit("u-alice", ROWS, max_active=3)


def test_a_failing_chunk_cancels_the_chunks_still_in_flight(store: JobStore) -> None:
    """Issue 13 item 3: a dead attempt's requests must not pile onto a restarted batch service."""
    store.submit("alice", np.zeros((40, 7)))
    cancelled: list[int] = []
    started: list[int] = []

    async def predict(rows: np.ndarray) -> tuple[list[float], str]:
        index = len(started)
        started.append(index)
        if index == 1:
            await asyncio.sleep(0.05)
            raise ServiceUnavailableError("batch model down")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(index)
            raise
        return [0.0] * len(rows), "admissions:x"

    asyncio.run(JobRunner(store, predict, chunk_rows=4, first_retry_s=60).run(claim(store)))
    assert len(started) <= 5  # a few at a time (the failed one's slot may start one more), not all ten
    assert sorted(cancelled) == [i for i in started if i != 1]  # every other request was cancelled


def test_readyz_fails_while_the_disk_of_the_database_is_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check's write changes no page, so it passed on a full disk while every upload failed. The
    real free space of the real disk, against a threshold raised above it."""
    import os

    from service import jobs

    store = JobStore(tmp_path / "jobs.sqlite").open()
    store.check()
    disk = os.statvfs(tmp_path)
    monkeypatch.setattr(jobs, "MIN_FREE_BYTES", disk.f_bavail * disk.f_frsize + (1 << 30))
    with pytest.raises(JobStoreUnavailableError, match=r"jobs\.sqlite is not usable: its disk is full \(\d+ KiB free"):
        store.check()


def test_a_job_is_counted_once_however_many_attempts_it_took(store: JobStore) -> None:
    """The predictions counter counted every chunk of every attempt: an outage mid-job counted the
    rows before it twice."""
    calls = 0

    async def flaky(rows: np.ndarray) -> tuple[list[float], str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ServiceUnavailableError("batch model down")
        return rows[:, 0].tolist(), "admissions:x"

    counted: list[tuple[str, str | None, int]] = []
    runner = JobRunner(
        store, flaky, chunk_rows=2, first_retry_s=0.01, completed=lambda j, n: counted.append((j.id, j.model_tag, n))
    )
    job = store.submit("alice", ROWS)
    asyncio.run(runner.run(claim(store)))  # chunk 1 done, chunk 2 fails: deferred
    assert store.get(job.id).status == PENDING and counted == []
    time.sleep(0.05)
    asyncio.run(runner.run(claim(store)))
    assert store.get(job.id).status == COMPLETED and calls == 4
    assert counted == [(job.id, "admissions:x", 3)]


def test_a_postgresql_restart_mid_job_does_not_cost_the_job_its_lease(postgres: Any) -> None:
    """A real restart of a real server while the outcome is written: the write is tried again for a
    few seconds instead of failing, which left the job running until its 60 s lease ran out."""
    import threading

    from tests.support.postgres import PostgresServer

    server = PostgresServer(postgres.binaries)  # its own server: the session's must not restart
    try:
        store = JobStore(server.new_database()).open()
        job = store.submit("alice", ROWS)
        running = claim(store, lease_s=60)
        data = str(server.folder / "data")
        server._run(["pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
        options = f"-p {server.port} -k {server.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        restart = threading.Timer(
            0.2,
            server._run,
            [["pg_ctl", "-D", data, "-l", str(server.folder / "server.log"), "-w", "start", "-o", options]],
        )
        restart.start()
        started = time.monotonic()
        try:
            assert store.complete(running, np.array([0.1, 0.2, 0.3]), "admissions:x")
        finally:
            restart.join()
        assert time.monotonic() - started < 10
        assert store.get(job.id).status == COMPLETED
    finally:
        server.stop()


def test_a_running_job_holds_its_rows_share_of_the_memory_budget_and_gives_it_back(store: JobStore) -> None:
    budget = Budget(10**9)
    held: list[int] = []

    async def predict(rows: np.ndarray) -> tuple[list[float], str]:
        held.append(budget.reserved)
        return rows[:, 0].tolist(), "admissions:x"

    async def broken(rows: np.ndarray) -> tuple[list[float], str]:
        raise InvalidInputError("rows the model cannot take")

    for model, status in ((predict, COMPLETED), (broken, FAILED)):
        job = store.submit("alice", ROWS)
        asyncio.run(JobRunner(store, model, chunk_rows=2, budget=budget).run(claim(store)))
        assert store.get(job.id).status == status
        assert (budget.reserved, budget.admitted) == (0, 0)  # given back however the job ended
    assert held == [len(ROWS) * JOB_BYTES_PER_ROW] * 2  # both chunks ran while the job held its share


def test_a_lease_renewal_that_breaks_unexpectedly_still_gives_the_memory_back(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The give-back came after awaiting the lease task in ``run``'s ``finally``: a renewal that raised
    anything but JobStoreUnavailableError (SQLAlchemy's pool TimeoutError, an OSError) skipped it, and
    the worker's budget stayed reserved for good (a million-row job's share refuses every body, 503)."""
    budget = Budget(10**9)

    def broken_extend(job: Job, lease_s: float) -> bool:
        raise RuntimeError("QueuePool limit reached")

    async def slow(rows: np.ndarray) -> tuple[list[float], str]:
        await asyncio.sleep(0.1)
        return rows[:, 0].tolist(), "admissions:x"

    monkeypatch.setattr(store, "extend", broken_extend)
    store.submit("alice", ROWS)
    runner = JobRunner(store, slow, chunk_rows=2, lease_s=0.04, budget=budget)
    with pytest.raises(RuntimeError):  # the loop logs it and backs off
        asyncio.run(runner.run(claim(store)))
    assert (budget.reserved, budget.admitted) == (0, 0)
