"""Runs batch jobs from the :class:`~service.jobs.JobStore` in the API process, in the background.

One asyncio task per API worker takes jobs one at a time (the store makes sure two workers never take
the same one), sends the rows to the batch model service in chunks, all at once so adaptive batching
can merge them, and stores the predictions. It is woken by each submission and also polls, so jobs
left by a previous run (or another worker) are found. On shutdown a running job is put back to
pending, and the next start takes it again. A job whose model service is unreachable (say, during a
restart) is retried after a short delay, up to the store's attempt limit, before it is failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from service.errors import JobNotReadyError, ServiceError, ServiceUnavailableError
from service.jobs import COMPLETED, FAILED, Job, JobStore

logger = logging.getLogger("admissions.jobs")
Predict = Callable[[np.ndarray], Awaitable[tuple[list[float], str]]]
LEASE_S = 60.0
POLL_S = 1.0
RETRY_DELAY_S = 2.0


class JobRunner:
    """The background loop that turns pending jobs into completed (or failed) ones."""

    def __init__(self, store: JobStore, predict: Predict, chunk_rows: int) -> None:
        self.store = store
        self.predict = predict
        self.chunk_rows = max(1, chunk_rows)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="admissions-jobs")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                job = await asyncio.to_thread(self.store.claim, LEASE_S)
            except Exception:
                logger.exception("cannot read the jobs database; retrying")
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=POLL_S)
                self._wake.clear()
                continue
            await self.run(job)

    async def run(self, job: Job) -> None:
        """Predict every row of ``job`` and store the outcome; errors fail the job, not the loop."""
        try:
            rows = await asyncio.to_thread(self.store.features, job.id)
            chunks = [rows[start : start + self.chunk_rows] for start in range(0, len(rows), self.chunk_rows)]
            outcomes = await asyncio.gather(*(self.predict(chunk) for chunk in chunks))
            predictions = np.concatenate([np.asarray(chances, dtype=np.float64) for chances, _ in outcomes])
            await asyncio.to_thread(self.store.complete, job.id, predictions, outcomes[0][1])
            logger.info("job %s completed: %d rows", job.id, len(predictions))
        except asyncio.CancelledError:
            self.store.release(job.id)  # shutting down: the next start takes it again
            raise
        except ServiceUnavailableError as exc:
            if job.attempts >= self.store.max_attempts:
                logger.warning("job %s failed after %d attempts: %s", job.id, job.attempts, exc.message)
                await asyncio.to_thread(self.store.fail, job.id, exc.message)
            else:  # e.g. the batch service is restarting: leave it running until the lease ends, then retry
                logger.warning("job %s will be retried in %.0f s: %s", job.id, RETRY_DELAY_S, exc.message)
                await asyncio.to_thread(self.store.extend, job.id, RETRY_DELAY_S)
        except ServiceError as exc:
            logger.warning("job %s failed: %s", job.id, exc.message)
            await asyncio.to_thread(self.store.fail, job.id, exc.message)
        except Exception as exc:
            logger.exception("job %s failed", job.id)
            await asyncio.to_thread(self.store.fail, job.id, f"internal error: {type(exc).__name__}")

    def results_body(self, job_id: str, owner: str) -> bytes:
        """The JSON body of a results response, or :class:`JobNotReadyError` while the job is not completed."""
        job, predictions = self.store.results(job_id, owner)
        if predictions is None:
            detail = f"job {job_id} is {job.status}" + (f": {job.error}" if job.status == FAILED else "")
            raise JobNotReadyError(detail, status=job.status)
        assert job.status == COMPLETED
        body = {"job_id": job.id, "model_tag": job.model_tag, "rows": job.n_rows, "chances": predictions.tolist()}
        return json.dumps(body).encode()
