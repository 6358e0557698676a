"""The API service: the only exposed one. Authenticates, validates, and routes to the model services.

POST routes are BentoML APIs (typed, in the OpenAPI document); the GET routes (/model, /jobs/status,
/jobs/results) are a small Starlette app mounted on the same server, because BentoML APIs are
POST-only. Authentication for all of them is :class:`service.middleware.BearerAuthMiddleware`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import bentoml
import numpy as np
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import auth, fast_paths, hop, memory_budget, offload, quiet, settings, users, wire
from service.columnar import to_csv
from service.contract import (
    FEATURE_NAMES,
    Applicant,
    BatchPrediction,
    JobStatus,
    LoginRequest,
    Prediction,
    TokenResponse,
    as_rows,
    batch_request,
)
from service.errors import (
    ConfigurationError,
    InvalidInputError,
    JobStoreUnavailableError,
    LoginFailedError,
    ServiceError,
    ServiceUnavailableError,
    TooManyRequestsError,
)
from service.explain import ExplanationUnavailableError
from service.extras import IntervalTables, Options, batch_extras, single_extras
from service.fast_paths import ColumnarBodies, SinglePredictions, wants_csv
from service.guard import BodyLimit, BoundedErrors, JsonBodiesOnly, NoQueryParameters, OneUploadAtATime
from service.jobs import Job, JobStore
from service.lifecycle import die_with_parent, leave, mark_server, supervised
from service.middleware import USER_KEY, BearerAuthMiddleware
from service.models import MODEL_TAG, UNTRACED, BatchModel, InProcess, SingleModel, json_depends
from service.openapi import OpenAPIDocument
from service.quiet import RateLimited
from service.runner import JobRunner, results_json
from service.throttle import Limits, LoginThrottle, client_address

logger = logging.getLogger("admissions.api")
BatchRequest = batch_request("BatchRequest", settings.or_exit(settings.max_batch_size))
JobRequest = batch_request("JobRequest", settings.or_exit(settings.max_job_size))
PREDICTIONS = bentoml.metrics.Counter(
    name="admissions_predictions",
    documentation="Predictions made, by endpoint and model tag (a batch of n rows counts n; a job once, at its end).",
    labelnames=["endpoint", "model_tag"],
)
_SINGLE_URL = settings.single_model_url()
_WORKERS = settings.or_exit(settings.api_workers)
_BODY_LIMITS = settings.or_exit(settings.body_limits)
_CSV_BODY_LIMITS = settings.or_exit(settings.csv_body_limits)
reads = Starlette()  # GET routes; filled in below, bound to the running service in AdmissionsAPI.__init__
T = TypeVar("T")
THROTTLED_ANSWER_DELAY_S = 1.0
USERS_UNAVAILABLE = "logins are unavailable at the moment: try again later"
_USERS_FILE_LOG = RateLimited()  # a broken users file and a flood of logins: a few lines a minute
_BANNER = "!" * 100
_EPHEMERAL_WARNING = (
    f"{_BANNER}\nWARNING: ADMISSIONS_DEV_MODE=1 and no JWT_SECRET_KEY: using an EPHEMERAL JWT secret; tokens die"
    f" with this server.\nNever run like this in production: set JWT_SECRET_KEY to 32+ random bytes.\n{_BANNER}"
)


def answers_errors(endpoint: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T | Response]]:
    """Turn a :class:`ServiceError` into its JSON response (BentoML would hide 4xx messages)."""

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> T | Response:
        try:
            return await endpoint(*args, **kwargs)
        except ServiceError as exc:
            if "ctx" in kwargs:  # with a Context parameter BentoML answers with ctx's status and headers
                kwargs["ctx"].response.status_code = exc.status
                kwargs["ctx"].response.metadata.update(exc.headers())
            return error_response(exc)

    return wrapper


def error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


@bentoml.service(
    name="admissions_api",
    workers=_WORKERS,
    logging={"access": {"enabled": False}},  # per-request access log lines cost throughput
    tracing=UNTRACED,  # see service/models.py
    traffic={"timeout": 60},
)
class AdmissionsAPI:
    """Predicts graduate-admission chances for authenticated users."""

    # Latency path: a separate SingleModel service when SINGLE_MODEL_URL is set, else in-process.
    single = json_depends(SingleModel, _SINGLE_URL) if _SINGLE_URL else InProcess(SingleModel)
    batch = json_depends(BatchModel, settings.batch_model_url())
    # Referenced here too so that a Bento of this service always carries the model.
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    @bentoml.on_deployment
    def check_settings() -> None:
        """Runs once in the serving process before any worker: refuse to start on a bad environment."""
        mark_server()  # before any worker starts: they check that this process is still their parent
        try:
            loaded = settings.prepare()
            store = JobStore(loaded.jobs_url or loaded.jobs_db).open()  # the schema, once, before the workers
            store.close()
            known = users.load(loaded.users_file)
        except (ConfigurationError, JobStoreUnavailableError, users.UsersFileError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        if loaded.ephemeral_secret:
            print(_EPHEMERAL_WARNING, file=sys.stderr)
        print(f"admissions: model {MODEL_TAG}; users file {loaded.users_file}; jobs database {store.path}")
        print(f"admissions: {_WORKERS} API worker(s); {_budget_note()}")
        if not known:
            state = "does not exist" if not loaded.users_file.exists() else "has no users"
            print(
                f"WARNING: users file {loaded.users_file} {state}: every login will fail. Add a user with "
                f"`ADMISSIONS_USERS_FILE={loaded.users_file} python -m service.users add alice`.",
                file=sys.stderr,
            )

    def __init__(self) -> None:
        die_with_parent()  # a worker never outlives `bentoml serve` (service/lifecycle.py)
        quiet.install()  # a client's malformed body: one short line in the log, not a traceback
        # BentoML's HTTP client sends BENTO_CLOUD_API_KEY as a bearer token: the model services' proof
        # that a call is the API's (guard.FromTheAPIOnly). Set before a dependency's client is made.
        token = settings.internal_token()
        if token is not None:
            os.environ["BENTO_CLOUD_API_KEY"] = token
        self.settings = settings.load()
        self.policy = auth.TokenPolicy(
            self.settings.jwt_secret, self.settings.issuer, self.settings.audience, self.settings.token_lifetime_s
        )
        self.jobs = JobStore(self.settings.jobs_url or self.settings.jobs_db)
        self.runner = JobRunner(
            self.jobs,
            self._predict_job_rows,
            chunk_rows=self.settings.max_csv_batch_size,  # the largest batch a request may carry
            lease_s=self.settings.job_lease_s,
            retry_window_s=self.settings.job_retry_window_s,
            supervised=supervised,  # an orphaned worker claims and renews nothing (service/lifecycle.py)
            orphaned=leave,
            completed=_count_job_predictions,
        )
        try:
            self.jobs.open()
        except JobStoreUnavailableError as exc:  # predictions still work; job routes answer 503
            logger.error("%s", exc.message)
            self.runner.problem = exc.message
        self._batch_tag: str | None = None
        self._hop: hop.SingleHop | None = None
        self.throttle = LoginThrottle(self.jobs, Limits(*self.settings.login_limits))
        self._hashing = asyncio.Semaphore(1)
        self._intervals = IntervalTables()
        reads.state.api = self
        _SERVING.policy = self.policy
        _SERVING.directory = users.Directory(self.settings.users_file)
        _SERVING.api = self
        budget = memory_budget.per_worker_bytes(_WORKERS, settings.memory_budget_mb())
        _SERVING.budget = memory_budget.Budget(budget) if budget is not None else None

    @bentoml.on_startup
    async def start_jobs(self) -> None:
        if isinstance(type(self).__dict__.get("single"), InProcess):
            _ = self.single  # load the in-process model now, not on the first request (/readyz means ready)
        self.runner.start()
        # Everything loaded so far (BentoML, sklearn, the model) lives as long as the process; frozen,
        # the full collections that still happen under load need not walk it (see service/patches.py).
        gc.collect()
        gc.freeze()

    async def __is_ready__(self) -> bool:
        """/readyz: ready when the jobs database answers a write (a probe every few seconds is cheap)."""
        try:
            await asyncio.to_thread(self.jobs.check)
        except JobStoreUnavailableError as exc:
            logger.error("not ready: %s", exc.message)
            self.runner.problem = exc.message
            return False
        return True

    @bentoml.on_shutdown
    async def stop_jobs(self) -> None:
        offload.stop()  # a body still being parsed must not hold up the shutdown
        if self._hop is not None:
            await self._hop.close()
        await self.runner.stop()
        self.jobs.close()

    @bentoml.api(input_spec=LoginRequest, output_spec=TokenResponse)
    @answers_errors
    async def login(self, username: str, password: str, ctx: bentoml.Context) -> TokenResponse:
        """Exchange a user name and password for a bearer token. After a few failures, 429 with Retry-After."""
        client = ctx.request.client  # the peer, or what a trusted proxy said it is (ADMISSIONS_TRUSTED_PROXIES)
        address = client_address(client.host if client else None)
        await self._refuse_if_throttled(username, address)
        async with self._hashing:  # one argon2 hash at a time per worker: logins cannot take every core
            await self._refuse_if_throttled(username, address)  # again: failures may have landed while queued
            try:
                user = await asyncio.to_thread(users.authenticate_user, self.settings.users_file, username, password)
            except users.UsersFileError as exc:  # the operator's problem: the path and cause go to the log only
                if _USERS_FILE_LOG.admit() is not None:
                    logger.error("login refused (503): %s", exc.message)
                raise ServiceUnavailableError(USERS_UNAVAILABLE) from None
        if user is None:
            await asyncio.to_thread(self.throttle.failed, username, address)
            raise LoginFailedError()
        await asyncio.to_thread(self.throttle.succeeded, username, address)
        token = auth.issue(self.policy, user.id, name=username, generation=user.generation)
        return TokenResponse(access_token=token.access_token, expires_in=token.expires_in)

    async def _refuse_if_throttled(self, username: str, address: str) -> None:
        """429 before the expensive hash. The answer is held back a second (it costs a sleeping coroutine,
        no CPU), so a client hammering /login gets about one answer a second per connection instead of
        keeping the cores busy with refusals."""
        wait = await asyncio.to_thread(self.throttle.retry_after, username, address)
        if wait is not None:
            await asyncio.sleep(THROTTLED_ANSWER_DELAY_S)
            raise TooManyRequestsError("too many failed logins: try again later", wait)

    @functools.cached_property
    def _single_calls(self) -> tuple[Any, Any]:
        """The single model's ``predict`` and ``explain``, bound once: BentoML binds an API method (with
        ``inspect.signature``) on every attribute access, 12% of a /predict (py-spy). A separate single
        service is called through service/hop.py: BentoML's client cost more than the rest of a /predict."""
        if _SINGLE_URL:
            self._hop = hop.SingleHop(_SINGLE_URL, settings.internal_token())
            return self._hop.predict, self.single.explain
        return self.single.predict, self.single.explain

    @bentoml.api(input_spec=Applicant, output_spec=Prediction)
    @answers_errors
    async def predict(self, ctx: bentoml.Context, **features: Any) -> Response:
        """One applicant's chance of admission and its prediction interval, from the latency-oriented model
        service. Query: ``interval`` (a calibrated level, e.g. 0.8, or ``none``), ``explain=true`` (contributions)."""
        # Valid bodies are usually answered by fast_paths.SinglePredictions before they get here.
        return await self.answer_single([float(features[name]) for name in FEATURE_NAMES], ctx.request.query_params)

    async def answer_single(self, values: list[float], query: Any) -> Response:
        """The answer to a /predict request for one valid applicant (features in contract order)."""
        options = Options.of(query)
        predict, explain = self._single_calls
        try:
            result = await (explain if options.explain else predict)(features=values)
            table = await self._intervals.get(result["model_tag"], self.single.info)
        except Exception as exc:
            raise ServiceUnavailableError(f"the single-prediction model service failed: {type(exc).__name__}") from exc
        if options.explain and result.get("explanation") is None:
            raise ExplanationUnavailableError(f"explanations are not available for model {result['model_tag']}")
        result.update(single_extras(table, options, result["chance"]))
        PREDICTIONS.labels(endpoint="predict", model_tag=result["model_tag"]).inc()
        # Serialised here: BentoML's generic output path cost ~10% of /predict (py-spy); same JSON shape.
        return Response(wire.to_json(result), media_type="application/json")

    @bentoml.api(input_spec=BatchRequest, output_spec=BatchPrediction)
    @answers_errors
    async def predict_batch(self, applicants: list[Any], ctx: bentoml.Context) -> Response:
        """Chances and intervals for 1 .. ADMISSIONS_MAX_BATCH_SIZE applicants, in input order. Query as /predict.
        Also takes ``text/csv`` (a header naming the seven fields, then a row per applicant, up to
        ADMISSIONS_MAX_CSV_BATCH_SIZE) and answers CSV (``chance,interval_low,interval_high``) when
        asked with ``Accept: text/csv``, or by default to a CSV body."""
        # Valid bodies are usually answered by fast_paths.ColumnarBodies before they get here.
        return await self.answer_batch(as_rows(applicants), ctx.request, wants_csv(ctx.request.scope, csv_in=False))

    def row_limits(self, path: str, csv: bool) -> int:
        """The most rows a body may carry on ``path`` (/predict_batch or /jobs), as CSV or as JSON."""
        if path == "/jobs":
            return self.settings.max_csv_job_size if csv else self.settings.max_job_size
        return self.settings.max_csv_batch_size if csv else self.settings.max_batch_size

    def request_model(self, path: str) -> type[BaseModel]:
        """The pydantic contract of a JSON body on ``path`` (/predict_batch or /jobs)."""
        return JobRequest if path == "/jobs" else BatchRequest

    async def answer_batch(self, rows: np.ndarray, request: Request, csv_out: bool) -> Response:
        """The answer to a /predict_batch request whose (n, 7) rows are valid, as JSON or CSV."""
        options = Options.of(request.query_params)
        if options.explain:
            if csv_out:
                raise InvalidInputError("explanations come in JSON answers only: ask with Accept: application/json")
            body = await self._explain_rows(rows)
        else:
            chances, tag = await self._predict_rows(rows)
            body = {"chances": chances, "model_tag": tag}
        try:
            table = await self._intervals.get(body["model_tag"], self.batch.to_async.info)
        except Exception as exc:
            raise ServiceUnavailableError(f"the batch model service failed: {type(exc).__name__}") from exc
        body.update(batch_extras(table, options, body["chances"]))
        PREDICTIONS.labels(endpoint="predict_batch", model_tag=body["model_tag"]).inc(len(body["chances"]))
        if csv_out:
            return await csv_response(body)
        return Response(wire.to_json(body), media_type="application/json")

    async def accept_job(self, rows: np.ndarray, owner: str) -> Response:
        """Store a job of valid (n, 7) rows and answer 202 with its status."""
        job = await asyncio.to_thread(self.jobs.submit, owner, rows, self.settings.max_active_jobs)
        self.runner.wake()
        return JSONResponse(job.as_status(), status_code=202)

    async def _explain_rows(self, rows: Any) -> dict[str, Any]:
        """Chances (the same code path as predictions) with contributions, from the batch service, unbatched."""
        try:
            result: dict[str, Any] = await self.batch.to_async.explain(rows)
        except Exception as exc:
            raise ServiceUnavailableError(f"the batch model service failed: {type(exc).__name__}") from exc
        if result.get("explanations") is None:
            raise ExplanationUnavailableError(f"explanations are not available for model {result['model_tag']}")
        return result

    @bentoml.api(route="/jobs", input_spec=JobRequest, output_spec=JobStatus)
    @answers_errors
    async def submit_job(self, applicants: list[Any], ctx: bentoml.Context) -> Response:
        """Queue a batch job; answers 202 with the job id at once. Poll ``GET /jobs/status?job_id=...``.
        Also takes ``text/csv``, as /predict_batch does, up to ADMISSIONS_MAX_CSV_JOB_SIZE rows."""
        # Valid bodies are usually taken by fast_paths.ColumnarBodies before they get here.
        rows = await asyncio.to_thread(as_rows, applicants)
        ctx.response.status_code = 202  # with a Context parameter BentoML answers with ctx's status
        return await self.accept_job(rows, ctx.request.scope[USER_KEY])

    async def _predict_rows(self, rows: np.ndarray) -> tuple[np.ndarray, str]:
        """Predictions from the batch model service, and the tag of the model that made them."""
        try:
            # One block each way (service/wire.py); a sync API, so its proxy method would block: to_async.
            [block] = await self.batch.to_async.predict(blocks=[wire.raw(rows)])
            if self._batch_tag is None:
                self._batch_tag = (await self.batch.to_async.info())["model_tag"]
        except Exception as exc:
            raise ServiceUnavailableError(f"the batch model service failed: {type(exc).__name__}") from exc
        chances = wire.unpack(block)
        if len(chances) != len(rows):
            raise ServiceUnavailableError(f"the batch model service gave {len(chances)} chances for {len(rows)} rows")
        return chances, self._batch_tag

    async def _predict_job_rows(self, rows: np.ndarray) -> tuple[np.ndarray, str]:
        return await self._predict_rows(rows)  # counted once the job completes: see _count_job_predictions

    async def model_info(self) -> dict[str, Any]:
        try:
            info: dict[str, Any] = await self.single.info()
        except Exception as exc:
            raise ServiceUnavailableError(f"the single-prediction model service failed: {type(exc).__name__}") from exc
        return info

    async def model_card(self) -> str:
        try:
            card: str = await self.single.card()
        except Exception as exc:
            raise ServiceUnavailableError(f"the single-prediction model service failed: {type(exc).__name__}") from exc
        return card


def _budget_note() -> str:
    budget = memory_budget.per_worker_bytes(_WORKERS, settings.or_exit(settings.memory_budget_mb))
    if budget is None:
        return "no memory limit: request bodies are not budgeted (ADMISSIONS_MEMORY_BUDGET_MB sets a budget)"
    return f"request bodies may cost up to {budget / memory_budget.MIB:,.0f} MiB at once per worker"


def _count_job_predictions(job: Job, rows: int) -> None:
    """A job's predictions, counted when its outcome is stored: an attempt cut short (an outage, a
    lost lease, a restart) is redone, and its chunks were once counted every time."""
    PREDICTIONS.labels(endpoint="jobs", model_tag=job.model_tag or "").inc(rows)


class _Serving:
    """What the auth middleware needs from the running service (set in ``AdmissionsAPI.__init__``)."""

    policy: auth.TokenPolicy | None = None
    directory: users.Directory | None = None  # tokens of removed users, or from before a new password, are revoked
    api: AdmissionsAPI | None = None
    budget: memory_budget.Budget | None = None  # of the request bodies held at once (service/memory_budget.py)


_SERVING = _Serving()
_JOBS_QUERY = (
    "a job has no explanations (POST /predict_batch?explain=true has them); ask for an interval level "
    "with its results (GET /jobs/results?job_id=...&interval=0.8)"
)
_SERVICE: Any = AdmissionsAPI  # the decorator made it a bentoml Service; mypy still sees the class
# The first added is the outermost: sizes and media types are checked before anything reads a body.
_SERVICE.add_asgi_middleware(OpenAPIDocument, service=_SERVICE)
_SERVICE.add_asgi_middleware(
    BodyLimit, limits=_BODY_LIMITS, default=settings.DEFAULT_BODY_LIMIT, csv_limits=_CSV_BODY_LIMITS
)
_SERVICE.add_asgi_middleware(JsonBodiesOnly, csv_paths=fast_paths.PATHS)
_SERVICE.add_asgi_middleware(BearerAuthMiddleware, policy=lambda: _SERVING.policy, users=lambda: _SERVING.directory)
_SERVICE.add_asgi_middleware(NoQueryParameters, paths={"/jobs": _JOBS_QUERY})
_SERVICE.add_asgi_middleware(OneUploadAtATime, paths=frozenset({"/jobs"}))
_SERVICE.add_asgi_middleware(
    memory_budget.MemoryBudget,
    budget=lambda: _SERVING.budget,
    limits={path: _BODY_LIMITS[path] for path in fast_paths.PATHS},
    csv_limits=_CSV_BODY_LIMITS,
)
_SERVICE.add_asgi_middleware(BoundedErrors)
_SERVICE.add_asgi_middleware(ColumnarBodies, api=lambda: _SERVING.api)  # the innermost: bodies are checked above
_SERVICE.add_asgi_middleware(SinglePredictions, api=lambda: _SERVING.api)


async def get_model(request: Request) -> Response:
    """GET /model: the serving model's tag, metrics and training parameters."""
    try:
        return JSONResponse(await request.app.state.api.model_info())
    except ServiceError as exc:
        return error_response(exc)


async def get_model_card(request: Request) -> Response:
    """GET /model/card: the serving model's card (Markdown), written by the pipeline and kept with the model."""
    try:
        card = await request.app.state.api.model_card()
    except ServiceError as exc:
        return error_response(exc)
    if not card:
        return JSONResponse({"error": "this model was registered without a model card"}, status_code=404)
    return Response(card, media_type="text/markdown; charset=utf-8")


def job_id(request: Request) -> str:
    """The ``job_id`` query parameter. (Not a path segment: BentoML labels request metrics with the raw
    path, so one label value per job would grow the metrics without bound.)"""
    value = request.query_params.get("job_id", "").strip()
    if not value:
        raise InvalidInputError("query parameter job_id is required", field="job_id")
    return value


async def get_job(request: Request) -> Response:
    """GET /jobs/status?job_id=...: a job's status."""
    api: AdmissionsAPI = request.app.state.api
    try:
        job = await asyncio.to_thread(api.jobs.get, job_id(request), request.scope[USER_KEY])
    except ServiceError as exc:
        return error_response(exc)
    return JSONResponse(job.as_status())


async def retry_job(request: Request) -> Response:
    """POST /jobs/retry?job_id=...: put a failed job back in the queue without uploading it again (202)."""
    api: AdmissionsAPI = request.app.state.api
    try:
        job = await asyncio.to_thread(api.jobs.retry, job_id(request), request.scope[USER_KEY])
    except ServiceError as exc:
        return error_response(exc)
    api.runner.wake()
    return JSONResponse(job.as_status(), status_code=202)


async def get_job_results(request: Request) -> Response:
    """GET /jobs/results?job_id=...: the predictions of a completed job (409 until then); as CSV with
    ``format=csv`` or ``Accept: text/csv``."""
    api: AdmissionsAPI = request.app.state.api
    try:
        options = Options.of(request.query_params)
        job, chances = await asyncio.to_thread(api.runner.results, job_id(request), request.scope[USER_KEY])
        try:  # the intervals of the model that made the predictions, when it is still the one served
            table = await api._intervals.of_model(job.model_tag or "", api.batch.to_async.info)
        except Exception:
            table = None
        if table is None:
            note = "the model that made these predictions is no longer served: no intervals"
            extras = {"intervals": None, "interval_level": None, "interval_note": note}
        else:
            extras = batch_extras(table, options, chances)
        if request.query_params.get("format", "").strip().lower() == "csv" or wants_csv(request.scope, False):
            return await csv_response({"chances": chances, "model_tag": job.model_tag, **extras}, job_id=job.id)
        body = await asyncio.to_thread(results_json, job, chances, extras)
    except ServiceError as exc:
        return error_response(exc)
    return Response(body, media_type="application/json")


async def csv_response(body: dict[str, Any], job_id: str | None = None) -> Response:
    """Predictions as CSV: ``chance`` and, when there are intervals, ``interval_low,interval_high``, a
    row per applicant in input order; the model tag and interval level go in headers."""
    columns = {"chance": body["chances"]}
    intervals = body.get("intervals")
    if intervals is not None:
        columns.update(interval_low=intervals[:, 0], interval_high=intervals[:, 1])
    headers = {"X-Model-Tag": body["model_tag"] or ""}
    if body.get("interval_level") is not None:
        headers["X-Interval-Level"] = f"{body['interval_level']:g}"
    if job_id is not None:
        headers["Content-Disposition"] = f'attachment; filename="{job_id}.csv"'
    content = await asyncio.to_thread(to_csv, columns) if len(body["chances"]) > 10_000 else to_csv(columns)
    return Response(content, media_type="text/csv; charset=utf-8", headers=headers)


reads.router.routes.extend(
    [
        Route("/model", get_model, methods=["GET"]),
        Route("/model/card", get_model_card, methods=["GET"]),
        Route("/jobs/status", get_job, methods=["GET"]),
        Route("/jobs/results", get_job_results, methods=["GET"]),
        Route("/jobs/retry", retry_job, methods=["POST"]),
    ]
)
_SERVICE.mount_asgi_app(reads, path="/", name="reads")
