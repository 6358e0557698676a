"""Where the two ways into the API meet: the answer to a valid request, however it came in.

A request reaches :class:`Answers` either from the fast paths (service/middleware/fast_paths.py, which
validate a body column by column and answer most requests) or from BentoML's endpoints in
service/api.py (the same request after BentoML's own validation). Both end here, so a prediction, its
interval, its counting and its errors are the same whichever way it came.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import wire
from service.columnar import to_csv, with_ids
from service.errors import InvalidInputError, ServiceUnavailableError
from service.explain import ExplanationUnavailableError
from service.extras import IntervalTables, Options, batch_extras, single_extras
from service.jobs import Job, JobStore
from service.monitoring import Monitor
from service.predlog import PredictionLog, chunk_row, prediction_ids
from service.runner import JobRunner
from service.settings import Settings

if TYPE_CHECKING:  # service/hop.py imports the fast paths, which import this module
    from service.hop import SingleHop

PREDICTIONS = bentoml.metrics.Counter(
    name="admissions_predictions",
    documentation="Predictions made, by endpoint and model tag (a batch of n rows counts n; a job once, at its end).",
    labelnames=["endpoint", "model_tag"],
)
CSV_IN_A_THREAD_ROWS = 10_000  # larger CSV answers are written off the event loop


@asynccontextmanager
async def calling(service: str) -> AsyncIterator[None]:
    """Any failure of a call to a model service is a 503 naming that service (never a 500)."""
    try:
        yield
    except Exception as exc:
        raise ServiceUnavailableError(f"the {service} model service failed: {type(exc).__name__}") from exc


@dataclass
class Answers:
    """Predictions, jobs and model information for valid requests; one per API worker."""

    single: Any  # the latency-oriented model service (a client, or the model in-process)
    batch: Any  # the throughput-oriented model service (a client)
    jobs: JobStore
    runner: JobRunner
    settings: Settings
    batch_request: type[BaseModel]  # the pydantic contract of a JSON /predict_batch body
    job_request: type[BaseModel]  # ... and of a JSON /jobs body
    hop: SingleHop | None = None  # the lean client of a separate single service (service/hop.py), if any
    log: PredictionLog | None = None  # every answered prediction (service/predlog.py); None when off
    monitor: Monitor | None = None  # drift, realised accuracy, the retrain signal (service/monitoring.py)

    def __post_init__(self) -> None:
        self.intervals = IntervalTables()
        self._batch_tag: str | None = None

    @functools.cached_property
    def _single_calls(self) -> tuple[Any, Any]:
        """The single model's ``predict`` and ``explain``, bound once: BentoML binds an API method (with
        ``inspect.signature``) on every attribute access, 12% of a /predict (py-spy). Bound on first use:
        a remote service's client gets its methods only when the server starts."""
        predict = self.hop.predict if self.hop is not None else self.single.predict
        return predict, self.single.explain

    def row_limits(self, path: str, csv: bool) -> int:
        """The most rows a body may carry on ``path`` (/predict_batch or /jobs), as CSV or as JSON."""
        if path == "/jobs":
            return self.settings.max_csv_job_size if csv else self.settings.max_job_size
        return self.settings.max_csv_batch_size if csv else self.settings.max_batch_size

    def request_model(self, path: str) -> type[BaseModel]:
        """The pydantic contract of a JSON body on ``path`` (/predict_batch or /jobs)."""
        return self.job_request if path == "/jobs" else self.batch_request

    async def answer_single(self, values: list[float], query: QueryParams, user: str) -> Response:
        """The answer to a /predict request for one valid applicant (features in contract order)."""
        options = Options.of(query)
        async with calling("single-prediction"):
            predict, explain = self._single_calls
            result = await (explain if options.explain else predict)(features=values)
            table = await self.intervals.get(result["model_tag"], self.single.info)
        if options.explain and result.get("explanation") is None:
            raise ExplanationUnavailableError(f"explanations are not available for model {result['model_tag']}")
        result.update(single_extras(table, options, result["chance"], values))
        if self.log is not None:
            result["prediction_id"] = self.log.single(
                values, result["chance"], result["interval"], result["interval_level"], result["model_tag"], user
            )
            await self._room_in_log()
        PREDICTIONS.labels(endpoint="predict", model_tag=result["model_tag"]).inc()
        # Serialised here: BentoML's generic output path cost ~10% of /predict (py-spy); same JSON shape.
        return Response(wire.to_json(result), media_type="application/json")

    async def answer_batch(self, rows: np.ndarray, request: Request, csv_out: bool, user: str) -> Response:
        """The answer to a /predict_batch request whose (n, 7) rows are valid, as JSON or CSV."""
        options = Options.of(request.query_params)
        if options.explain:
            if csv_out:
                raise InvalidInputError("explanations come in JSON answers only: ask with Accept: application/json")
            body = await self._explain_rows(rows)
        else:
            chances, tag = await self.predict_rows(rows)
            body = {"chances": chances, "model_tag": tag}
        async with calling("batch"):
            table = await self.intervals.get(body["model_tag"], self.batch.to_async.info)
        body.update(batch_extras(table, options, body["chances"], rows))
        if self.log is not None:
            request_id = self.log.batch(
                rows, body["chances"], body["intervals"], body["interval_level"], body["model_tag"], user
            )
            await self._room_in_log()
            if csv_out:
                body["request_id"] = request_id
            else:
                body["prediction_ids"] = prediction_ids(request_id, len(body["chances"]))
        PREDICTIONS.labels(endpoint="predict_batch", model_tag=body["model_tag"]).inc(len(body["chances"]))
        if csv_out:
            return await csv_response(body)
        return Response(wire.to_json(body), media_type="application/json")

    async def _room_in_log(self) -> None:
        """Past ``predlog.MAX_BUFFERED_ROWS`` unwritten rows, a request waits for the log's write (off the
        event loop) instead of letting the buffer, and what a crash would lose, grow."""
        if self.log is not None and self.log.crowded:
            await asyncio.to_thread(self.log.wait_for_room)

    async def job_log(self, job: Job, rows: np.ndarray, chances: np.ndarray, tag: str) -> dict[str, Any] | None:
        """A completed job's rows as a prediction-log chunk, written with the job's outcome (service/jobs.py);
        its intervals at the default level of the model that made them."""
        if self.log is None:
            return None
        try:
            table = await self.intervals.of_model(tag, self.batch.to_async.info)
        except Exception:
            table = None
        level = table.default_level if table is not None else None
        intervals = None
        if table is not None and level is not None:  # in slices: a million rows at once cost ~100 MB of temporaries
            step = 100_000
            pieces = [table.pairs(chances[i : i + step], level, rows[i : i + step]) for i in range(0, len(rows), step)]
            intervals = np.concatenate(pieces) if pieces else np.empty((0, 2))
        # The features stay in the database: service/jobs.py copies the job's packed columns into the log.
        chunk = chunk_row(job.id, "jobs", rows, chances, intervals, level, tag, job.owner, job.created_at, False)
        return chunk

    async def accept_job(self, rows: np.ndarray, owner: str) -> Response:
        """Store a job of valid (n, 7) rows and answer 202 with its status."""
        job = await asyncio.to_thread(self.jobs.submit, owner, rows, self.settings.max_active_jobs)
        self.runner.wake()
        return JSONResponse(job.as_status(), status_code=202)

    async def predict_rows(self, rows: np.ndarray) -> tuple[np.ndarray, str]:
        """Predictions from the batch model service, and the tag of the model that made them (jobs too)."""
        async with calling("batch"):
            # One block each way (service/wire.py); a sync API, so its proxy method would block: to_async.
            [block] = await self.batch.to_async.predict(blocks=[wire.raw(rows)])
            if self._batch_tag is None:
                self._batch_tag = (await self.batch.to_async.info())["model_tag"]
        chances = wire.unpack(block)
        if len(chances) != len(rows):
            raise ServiceUnavailableError(f"the batch model service gave {len(chances)} chances for {len(rows)} rows")
        return chances, self._batch_tag

    async def _explain_rows(self, rows: Any) -> dict[str, Any]:
        """Chances (the same code path as predictions) with contributions, from the batch service, unbatched."""
        async with calling("batch"):
            result: dict[str, Any] = await self.batch.to_async.explain(rows)
        if result.get("explanations") is None:
            raise ExplanationUnavailableError(f"explanations are not available for model {result['model_tag']}")
        return result

    async def model_info(self) -> dict[str, Any]:
        async with calling("single-prediction"):
            info: dict[str, Any] = await self.single.info()
        return info

    async def model_card(self) -> str:
        async with calling("single-prediction"):
            card: str = await self.single.card()
        return card

    async def job_extras(self, job: Job, options: Options, chances: np.ndarray) -> dict[str, Any]:
        """A job's intervals, from the model that made its predictions while that model is still served."""
        try:
            table = await self.intervals.of_model(job.model_tag or "", self.batch.to_async.info)
        except Exception:
            table = None
        if table is None:
            note = "the model that made these predictions is no longer served: no intervals"
            return {"intervals": None, "interval_level": None, "interval_note": note}
        rows = await asyncio.to_thread(self.jobs.features, job.id) if table.needs_rows else None
        return batch_extras(table, options, chances, rows)


def current() -> Answers | None:
    """The running API worker's :class:`Answers`, or None before its service instance exists."""
    try:
        return bentoml.get_current_service().answers  # type: ignore[no-any-return]
    except (BentoMLException, AttributeError):
        return None


async def csv_response(body: dict[str, Any], job_id: str | None = None) -> Response:
    """Predictions as CSV: ``prediction_id`` (when logged), ``chance`` and, when there are intervals,
    ``interval_low,interval_high``, a row per applicant in input order; the model tag and interval level
    go in headers."""
    columns = {"chance": body["chances"]}
    request_id = body.get("request_id")
    intervals = body.get("intervals")
    if intervals is not None:
        columns.update(interval_low=intervals[:, 0], interval_high=intervals[:, 1])
    headers = {"X-Model-Tag": body["model_tag"] or ""}
    if body.get("interval_level") is not None:
        headers["X-Interval-Level"] = f"{body['interval_level']:g}"
    if job_id is not None:
        headers["Content-Disposition"] = f'attachment; filename="{job_id}.csv"'

    def write() -> bytes:
        text = to_csv(columns)
        return with_ids(text, request_id) if request_id is not None else text

    content = await asyncio.to_thread(write) if len(body["chances"]) > CSV_IN_A_THREAD_ROWS else write()
    return Response(content, media_type="text/csv; charset=utf-8", headers=headers)
