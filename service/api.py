"""The API service: the only exposed one. Authenticates, validates, and routes to the model services.

This module declares the service and its endpoints; what they answer is in service/answers.py (where
BentoML's endpoints and the fast paths meet), the GET routes are in service/routes.py, and the
middleware in service/middleware/ (the order they run in is set at the bottom of this file).
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
from starlette.responses import Response

from core.contract import FEATURE_NAMES
from service import auth, container_limits, hop, offload, routes, settings, users
from service.answers import PREDICTIONS, Answers
from service.errors import (
    ConfigurationError,
    JobStoreUnavailableError,
    LoginFailedError,
    ServiceError,
    ServiceUnavailableError,
    TooManyRequestsError,
)
from service.jobs import Job, JobStore
from service.lifecycle import leave, supervised
from service.middleware import USER_KEY
from service.middleware.auth import BearerAuthMiddleware
from service.middleware.docs import OpenAPIDocument
from service.middleware.fast_paths import PATHS, ColumnarBodies, SinglePredictions, wants_csv
from service.middleware.guard import BodyLimit, BoundedErrors, JsonBodiesOnly, NoQueryParameters, OneUploadAtATime
from service.middleware.memory_budget import Budget, MemoryBudget
from service.models import (
    MODEL_TAG,
    UNTRACED,
    BatchModel,
    InProcess,
    SingleModel,
    before_workers,
    in_each_worker,
    json_depends,
    local_model,
)
from service.monitoring import Monitor, watch
from service.predlog import PredictionLog
from service.quiet import RateLimited
from service.runner import JobRunner
from service.schemas import (
    Applicant,
    BatchPrediction,
    JobStatus,
    LoginRequest,
    Prediction,
    TokenResponse,
    as_rows,
    batch_request,
)
from service.throttle import Limits, LoginThrottle, client_address

logger = logging.getLogger("admissions.api")
BatchRequest = batch_request("BatchRequest", settings.declared(settings.max_batch_size))
JobRequest = batch_request("JobRequest", settings.declared(settings.max_job_size))
_SINGLE_URL = settings.single_model_url()
_WORKERS = settings.declared(settings.api_workers)
T = TypeVar("T")
THROTTLED_ANSWER_DELAY_S = 1.0
USERS_UNAVAILABLE = "logins are unavailable at the moment: try again later"
_USERS_FILE_LOG = RateLimited()  # a broken users file and a flood of logins: a few lines a minute
_BANNER = "!" * 100
_EPHEMERAL_WARNING = (
    f"{_BANNER}\nWARNING: ADMISSIONS_DEV_MODE=1 and no JWT_SECRET_KEY: using an EPHEMERAL JWT secret; tokens die"
    f" with this server.\nNever run like this in production: set JWT_SECRET_KEY to 32+ random bytes.\n{_BANNER}"
)
_JOBS_QUERY = (
    "a job has no explanations (POST /predict_batch?explain=true has them); ask for an interval level "
    "with its results (GET /jobs/results?job_id=...&interval=0.8)"
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
            return routes.error_response(exc)

    return wrapper


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
    bento_model = local_model(MODEL_TAG)

    @bentoml.on_deployment
    def check_settings() -> None:
        """Runs once in the serving process before any worker: refuse to start on a bad environment."""
        before_workers()  # the workers' parent, the BentoML patches, the model in the store
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
        print(f"admissions: {_WORKERS} API worker(s); {_budget_note(loaded.memory_budget_mb)}")
        print(f"admissions: model {MODEL_TAG}; users file {loaded.users_file}; jobs database {store.path}")
        if not known:
            state = "does not exist" if not loaded.users_file.exists() else "has no users"
            print(
                f"WARNING: users file {loaded.users_file} {state}: every login will fail. Add a user with "
                f"`ADMISSIONS_USERS_FILE={loaded.users_file} python -m service.users add alice`.",
                file=sys.stderr,
            )

    def __init__(self) -> None:
        in_each_worker()
        # BentoML's HTTP client sends BENTO_CLOUD_API_KEY as a bearer token: the model services' proof
        # that a call is the API's (guard.FromTheAPIOnly). Set before a dependency's client is made.
        token = settings.internal_token()
        if token is not None:
            os.environ["BENTO_CLOUD_API_KEY"] = token
        self.settings = settings.load()
        # What the middleware reach through bentoml.get_current_service():
        self.policy = auth.TokenPolicy(
            self.settings.jwt_secret, self.settings.issuer, self.settings.audience, self.settings.token_lifetime_s
        )
        self.directory = users.Directory(self.settings.users_file)  # revokes tokens of removed users
        budget = container_limits.per_worker_bytes(_WORKERS, self.settings.memory_budget_mb)
        self.budget = Budget(budget) if budget is not None else None  # of the request bodies held at once
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
            logged=self._job_log,
            budget=self.budget,
        )
        try:
            self.jobs.open()
        except JobStoreUnavailableError as exc:  # predictions still work; job routes answer 503
            logger.error("%s", exc.message)
            self.runner.problem = exc.message
        self.throttle = LoginThrottle(self.jobs, Limits(*self.settings.login_limits))
        self._hashing = asyncio.Semaphore(1)
        # The in-process model (if any) loads here, not on the first request: /readyz means ready.
        # A separate single service is called through service/hop.py: BentoML's client cost more than the
        # rest of a /predict (docs/benchmarks.md, "The split topology").
        self.hop = hop.SingleHop(_SINGLE_URL, settings.internal_token()) if _SINGLE_URL else None
        # Every answered prediction, and the figures drawn from them (service/predlog.py, service/monitoring.py).
        self.log = PredictionLog(self.jobs.engine, self.jobs.path) if self.settings.prediction_log else None
        self.monitor = Monitor(self.log, self.jobs, lambda: MODEL_TAG, self.settings.drift_window) if self.log else None
        self.answers = Answers(
            *(self.single, self.batch, self.jobs, self.runner, self.settings, BatchRequest, JobRequest),
            hop=self.hop,
            log=self.log,
            monitor=self.monitor,
        )
        self._watching: asyncio.Task[None] | None = None

    @bentoml.on_startup
    async def start_jobs(self) -> None:
        self.runner.start()
        if self.log is not None and self.monitor is not None:
            self.log.start()
            retention_s = self.settings.prediction_log_days * 86_400
            self._watching = asyncio.create_task(watch(self.monitor, self.log, retention_s), name="admissions-monitor")
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
        if self.hop is not None:
            await self.hop.close()
        if self._watching is not None:
            self._watching.cancel()
        if self.log is not None:
            await asyncio.to_thread(self.log.stop)  # what is buffered is written before the worker ends
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

    @bentoml.api(input_spec=Applicant, output_spec=Prediction)
    @answers_errors
    async def predict(self, ctx: bentoml.Context, **features: Any) -> Response:
        """One applicant's chance of admission and its prediction interval, from the latency-oriented model
        service. Query: ``interval`` (a calibrated level, e.g. 0.8, or ``none``), ``explain=true`` (contributions)."""
        # Valid bodies are usually answered by the fast path (SinglePredictions) before they get here.
        values = [float(features[name]) for name in FEATURE_NAMES]
        return await self.answers.answer_single(values, ctx.request.query_params, ctx.request.scope[USER_KEY])

    @bentoml.api(input_spec=BatchRequest, output_spec=BatchPrediction)
    @answers_errors
    async def predict_batch(self, applicants: list[Any], ctx: bentoml.Context) -> Response:
        """Chances and intervals for 1 .. ADMISSIONS_MAX_BATCH_SIZE applicants, in input order. Query as /predict.
        Also takes ``text/csv`` (a header naming the seven fields, then a row per applicant, up to
        ADMISSIONS_MAX_CSV_BATCH_SIZE) and answers CSV (``chance,interval_low,interval_high``) when
        asked with ``Accept: text/csv``, or by default to a CSV body."""
        # Valid bodies are usually answered by the fast path (ColumnarBodies) before they get here.
        csv_out = wants_csv(ctx.request.scope, csv_in=False)
        return await self.answers.answer_batch(as_rows(applicants), ctx.request, csv_out, ctx.request.scope[USER_KEY])

    @bentoml.api(route="/jobs", input_spec=JobRequest, output_spec=JobStatus)
    @answers_errors
    async def submit_job(self, applicants: list[Any], ctx: bentoml.Context) -> Response:
        """Queue a batch job; answers 202 with the job id at once. Poll ``GET /jobs/status?job_id=...``.
        Also takes ``text/csv``, as /predict_batch does, up to ADMISSIONS_MAX_CSV_JOB_SIZE rows."""
        # Valid bodies are usually taken by the fast path (ColumnarBodies) before they get here.
        rows = await asyncio.to_thread(as_rows, applicants)
        ctx.response.status_code = 202  # with a Context parameter BentoML answers with ctx's status
        return await self.answers.accept_job(rows, ctx.request.scope[USER_KEY])

    async def _job_log(self, job: Job, rows: np.ndarray, chances: np.ndarray, tag: str) -> dict[str, Any] | None:
        return await self.answers.job_log(job, rows, chances, tag)

    async def _predict_job_rows(self, rows: np.ndarray) -> tuple[np.ndarray, str]:
        return await self.answers.predict_rows(rows)  # counted once the job completes: _count_job_predictions


def _budget_note(budget_mb: int | None) -> str:
    budget = container_limits.per_worker_bytes(_WORKERS, budget_mb)
    if budget is None:
        return "no memory limit: request bodies are not budgeted (ADMISSIONS_MEMORY_BUDGET_MB sets a budget)"
    return f"request bodies may cost up to {budget / container_limits.MIB:,.0f} MiB at once per worker"


def _count_job_predictions(job: Job, rows: int) -> None:
    """A job's predictions, counted when its outcome is stored: an attempt cut short (an outage, a
    lost lease, a restart) is redone, and its chunks were once counted every time."""
    PREDICTIONS.labels(endpoint="jobs", model_tag=job.model_tag or "").inc(rows)


def _running(name: str) -> Callable[[], Any]:
    """An attribute of the running API instance (None before it exists), for the auth middleware."""

    def get() -> Any:
        try:
            return getattr(bentoml.get_current_service(), name, None)
        except bentoml.exceptions.BentoMLException:
            return None

    return get


SERVICE: Any = AdmissionsAPI  # the decorator made it a bentoml Service; mypy still sees the class
# The first added is the outermost: sizes and media types are checked before anything reads a body.
SERVICE.add_asgi_middleware(OpenAPIDocument, service=SERVICE)
SERVICE.add_asgi_middleware(
    BodyLimit,
    limits=settings.declared(settings.body_limits),
    default=settings.DEFAULT_BODY_LIMIT,
    csv_limits=settings.declared(settings.csv_body_limits),
)
SERVICE.add_asgi_middleware(JsonBodiesOnly, csv_paths=PATHS | {"/outcomes"})
SERVICE.add_asgi_middleware(BearerAuthMiddleware, policy=_running("policy"), users=_running("directory"))
SERVICE.add_asgi_middleware(NoQueryParameters, paths={"/jobs": _JOBS_QUERY})
SERVICE.add_asgi_middleware(OneUploadAtATime, paths=frozenset({"/jobs"}))
SERVICE.add_asgi_middleware(
    MemoryBudget,
    budget=_running("budget"),
    limits={path: settings.declared(settings.body_limits)[path] for path in PATHS},
    csv_limits=settings.declared(settings.csv_body_limits),
)
SERVICE.add_asgi_middleware(BoundedErrors)
SERVICE.add_asgi_middleware(ColumnarBodies)  # the innermost: bodies are checked above
SERVICE.add_asgi_middleware(SinglePredictions)
SERVICE.mount_asgi_app(routes.app, path="/", name="routes")
