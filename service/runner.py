"""Runs batch jobs from the :class:`~service.jobs.JobStore` in the API process, in the background.

One asyncio task per API worker takes jobs one at a time (the store makes sure two attempts never
store an outcome for the same job), sends the rows to the batch model service in chunks, a few at a
time so adaptive batching can merge them, and stores the predictions. It is woken by each submission
and also polls, so jobs left by a previous run (or another worker) are found.

What "accepted means done" takes, under faults:
- the loop survives every error: it logs it, marks the runner unhealthy (``/readyz`` says so), backs
  off and goes on;
- the lease of a running job is renewed while it runs, so no other worker takes a slow job; an attempt
  that lost its lease anyway is cancelled and can store nothing (the store checks the claim);
- but only while the attempt makes progress and its worker is supervised: an orphaned worker (its
  server dead, service/lifecycle.py) once claimed jobs and renewed their leases for 83 minutes without
  finishing one. A worker whose server is gone claims nothing more, puts its job back to pending and
  leaves; an attempt with no chunk answered for ``stall_s`` stops renewing and waits out the outage
  like any other (below);
- a model-service outage puts the job back to pending with a note and a growing delay, for up to
  ``retry_window_s`` (10 minutes by default) before it fails; the chunks still in flight are
  cancelled first, so a restarted service is not flooded by a dead attempt's requests;
- on shutdown a running job is put back to pending, and the next start takes it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np

from service import wire
from service.errors import JobNotReadyError, JobStoreUnavailableError, ServiceError, ServiceUnavailableError
from service.jobs import COMPLETED, FAILED, Job, JobStore
from service.middleware.memory_budget import Budget, give_back_freed_memory

logger = logging.getLogger("admissions.jobs")
Predict = Callable[[np.ndarray], Awaitable[tuple[np.ndarray | list[float], str]]]
LEASE_S = 60.0
POLL_S = 1.0
MAX_BACKOFF_S = 30.0
RETRY_WINDOW_S = 600.0
IN_FLIGHT_CHUNKS = 4  # enough to keep the batch service's queue full, few enough to cancel quickly
# No chunk answered for this long: the attempt is stuck. Twice the batch service's request timeout
# (models.py), so a chunk that is still answered is never taken for stuck.
STALL_S = 120.0
# What a running job costs the API worker per row, held from its memory budget while it runs: its
# features, chunks in flight, predictions, the prediction log's columns and intervals (RSS peak +462 MiB
# for a million rows in the compose stack's API container, measured around one job on a fresh worker).
JOB_BYTES_PER_ROW = 500
LOST, STALLED, ORPHANED = "lost", "stalled", "orphaned"  # why an attempt stopped renewing its lease


def _stopping() -> bool:
    """Whether the running task itself is being cancelled (a stop), not only what it awaited."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _ended(lease: asyncio.Task[str]) -> None:
    """Wait for a cancelled lease renewal to end, raising what broke it, if anything. Waited for, not
    awaited: a stop arriving meanwhile must cancel the caller, not pass for the lease's own
    cancellation (it once was swallowed, and the loop polled on through the worker's shutdown)."""
    await asyncio.wait({lease})
    if not lease.cancelled():
        lease.result()


class JobRunner:
    """The background loop that turns pending jobs into completed (or failed) ones."""

    def __init__(
        self,
        store: JobStore,
        predict: Predict,
        chunk_rows: int,
        lease_s: float = LEASE_S,
        retry_window_s: float = RETRY_WINDOW_S,
        first_retry_s: float = 2.0,
        stall_s: float = STALL_S,
        supervised: Callable[[], bool] = lambda: True,
        orphaned: Callable[[], None] = lambda: None,
        completed: Callable[[Job, int], None] | None = None,
        logged: Callable[[Job, np.ndarray, np.ndarray, str], Awaitable[dict[str, Any] | None]] | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.store = store
        self.predict = predict
        self.chunk_rows = max(1, chunk_rows)
        self.lease_s = lease_s
        self.retry_window_s = retry_window_s
        self.first_retry_s = first_retry_s
        self.stall_s = stall_s
        self.supervised, self.orphaned = supervised, orphaned
        self._progress_at = 0.0  # when the running attempt last had a chunk answered (monotonic)
        self.completed = completed  # called once per job whose outcome was stored (counts work done once)
        self.logged = logged  # a job's rows as a prediction-log chunk, stored with its outcome
        self.budget = budget  # the worker's memory budget, shared with the bodies it admits
        self._held = 0
        self.problem: str | None = None  # why the jobs database is unusable, while it is
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="admissions-jobs")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})  # its end, without taking a cancellation of the caller for it

    async def _loop(self) -> None:
        backoff = POLL_S
        while True:
            if not self.supervised():
                self.orphaned()
                return  # claims nothing more: the server that runs this worker is gone
            try:
                job = await asyncio.to_thread(self.store.claim, self.lease_s)
                self._recovered()
                if job is None:
                    # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancellation that comes as
                    # the event is set (CPython gh-86296), and a stop would be lost with it.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_S):
                            await self._wake.wait()
                    self._wake.clear()
                    continue
                await self.run(job)
                backoff = POLL_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive any error, or accepted jobs stall for good
                self._failing(exc)
                logger.error("job loop: %s; trying again in %.0f s", self.problem, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def run(self, job: Job) -> None:
        """Predict every row of ``job`` and store the outcome once. A database error propagates (the
        loop backs off; the job's lease runs out and it is taken again); any other error ends the job."""
        self._progress_at = time.monotonic()
        predicting = asyncio.create_task(self._predict_all(job))
        lease = asyncio.create_task(self._keep_lease(job, predicting))
        try:
            try:
                rows, predictions, tag = await predicting
            except asyncio.CancelledError:
                # Why the attempt ended, unless the runner itself is being stopped: that must never be swallowed.
                ended = lease.result() if lease.done() and not lease.cancelled() and not _stopping() else None
                if ended == LOST:
                    logger.warning("job %s: lease lost; this attempt stops", job.id)
                    return
                if ended == STALLED:
                    await self._defer(job, f"no chunk was answered for {self.stall_s:.0f} s")
                    return
                predicting.cancel()
                with contextlib.suppress(JobStoreUnavailableError):  # if not, the lease runs out instead
                    self.store.release(job)  # shutting down or orphaned: a live worker takes it at once
                if ended == ORPHANED:
                    logger.error("job %s: the server is gone; the job is back to pending", job.id)
                    return
                raise
            except JobStoreUnavailableError:
                raise
            except ServiceUnavailableError as exc:
                await self._defer(job, exc.message)
                return
            except ServiceError as exc:
                logger.warning("job %s failed: %s", job.id, exc.message)
                await asyncio.to_thread(self.store.fail, job, exc.message)
                return
            except Exception as exc:
                logger.exception("job %s failed", job.id)
                await asyncio.to_thread(self.store.fail, job, f"internal error: {type(exc).__name__}")
                return
            log = await self.logged(job, rows, predictions, tag) if self.logged is not None else None
            if await asyncio.to_thread(self.store.complete, job, predictions, tag, log):
                logger.info("job %s completed: %d rows", job.id, len(predictions))
                if self.completed is not None:
                    self.completed(replace(job, model_tag=tag), len(predictions))
            else:
                logger.warning("job %s: lease lost before its results were stored; another attempt has it", job.id)
        finally:
            lease.cancel()
            # First: awaiting a renewal that broke unexpectedly raises, and the budget stayed reserved for good.
            await self._give_back_memory()
            await _ended(lease)

    async def _predict_all(self, job: Job) -> tuple[np.ndarray, np.ndarray, str]:
        """All rows through the batch service, ``IN_FLIGHT_CHUNKS`` chunks at a time; on the first error
        the other chunks are cancelled before it propagates. It waits for room in the memory budget
        first (while its lease is renewed): a job's rows cost more than its upload did."""
        if self.budget is not None:
            amount = job.n_rows * JOB_BYTES_PER_ROW
            await self.budget.hold(amount)
            self._held = amount
            self._progress_at = time.monotonic()  # waiting for room is not a stalled model service
        rows = await asyncio.to_thread(self.store.features, job.id)
        chunks = [rows[start : start + self.chunk_rows] for start in range(0, len(rows), self.chunk_rows)]
        gate = asyncio.Semaphore(IN_FLIGHT_CHUNKS)

        async def one(chunk: np.ndarray) -> tuple[np.ndarray | list[float], str]:
            async with gate:
                answer = await self.predict(chunk)
            self._progress_at = time.monotonic()
            return answer

        tasks = [asyncio.create_task(one(chunk)) for chunk in chunks]
        try:
            outcomes = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        predictions = np.concatenate([np.asarray(chances, dtype=np.float64) for chances, _ in outcomes])
        return rows, predictions, outcomes[0][1]

    async def _give_back_memory(self) -> None:
        if self._held and self.budget is not None:
            self.budget.give(self._held)
            self._held = 0
            await asyncio.to_thread(give_back_freed_memory)

    async def _keep_lease(self, job: Job, work: asyncio.Task[tuple[np.ndarray, np.ndarray, str]]) -> str:
        """Renew the lease every quarter of its length while the attempt can finish; otherwise cancel
        ``work`` and say why: the job was lost, the attempt is stuck, or the server is gone."""
        while True:
            await asyncio.sleep(self.lease_s / 4)
            ended = None
            if not self.supervised():
                ended = ORPHANED
            elif time.monotonic() - self._progress_at > self.stall_s:
                ended = STALLED
            else:
                try:
                    if not await asyncio.to_thread(self.store.extend, job, self.lease_s):
                        ended = LOST
                except JobStoreUnavailableError as exc:
                    logger.error("job %s: %s; will try again", job.id, exc.message)
            if ended is not None:
                work.cancel()
                return ended

    async def _defer(self, job: Job, reason: str) -> None:
        now = time.time()
        since = job.unavailable_since or now
        if now - since >= self.retry_window_s:
            message = f"{reason} (for {now - since:.0f} s, longer than the {self.retry_window_s:.0f} s retry window)"
            logger.warning("job %s failed: %s", job.id, message)
            await asyncio.to_thread(self.store.fail, job, message)
            return
        waited = now - since
        delay = min(MAX_BACKOFF_S, max(self.first_retry_s, waited))  # doubles the time waited so far
        note = f"waiting for the model service: {reason}; unavailable for {waited:.0f} s, next try in {delay:.0f} s"
        logger.warning("job %s %s", job.id, note)
        await asyncio.to_thread(self.store.defer, job, note, delay)

    def _failing(self, exc: Exception) -> None:
        self.problem = exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"

    def _recovered(self) -> None:
        if self.problem is not None:
            logger.warning("job loop: the jobs database works again")
            self.problem = None

    def results(self, job_id: str, owner: str) -> tuple[Job, np.ndarray]:
        """A completed job and its chances, or :class:`JobNotReadyError` while the job is not completed."""
        job, predictions = self.store.results(job_id, owner)
        if predictions is None:
            detail = f"job {job_id} is {job.status}" + (f": {job.error}" if job.status == FAILED else "")
            raise JobNotReadyError(detail, status=job.status)
        assert job.status == COMPLETED
        return job, predictions


def results_json(job: Job, predictions: np.ndarray, extras: dict[str, Any] | None = None) -> bytes:
    """A completed job's results as JSON; ``extras`` adds fields (its intervals)."""
    body = {"job_id": job.id, "model_tag": job.model_tag, "rows": job.n_rows, "chances": predictions}
    return wire.to_json({**body, **(extras or {})})
