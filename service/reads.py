"""The API's GET routes (and the retry of a job): a small Starlette app mounted on the API server.

BentoML APIs are POST-only, so these routes live here; authentication is the same middleware as
for every route (service/middleware/auth.py). A :class:`ServiceError` from any of them becomes its JSON
answer in one exception handler; the running API is reached through ``bentoml.get_current_service()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import answers
from service.errors import InvalidInputError, ServiceError, ServiceUnavailableError
from service.extras import Options
from service.middleware import USER_KEY
from service.middleware.fast_paths import wants_csv
from service.runner import results_json


def error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


def running() -> answers.Answers:
    found = answers.current()
    if found is None:
        raise ServiceUnavailableError("service is starting: try again shortly")
    return found


def job_id(request: Request) -> str:
    """The ``job_id`` query parameter. (Not a path segment: BentoML labels request metrics with the raw
    path, so one label value per job would grow the metrics without bound.)"""
    value = request.query_params.get("job_id", "").strip()
    if not value:
        raise InvalidInputError("query parameter job_id is required", field="job_id")
    return value


async def get_model(request: Request) -> Response:
    """GET /model: the serving model's tag, metrics and training parameters."""
    return JSONResponse(await running().model_info())


async def get_model_card(request: Request) -> Response:
    """GET /model/card: the serving model's card (Markdown), written by the pipeline and kept with the model."""
    card = await running().model_card()
    if not card:
        return JSONResponse({"error": "this model was registered without a model card"}, status_code=404)
    return Response(card, media_type="text/markdown; charset=utf-8")


async def get_job(request: Request) -> Response:
    """GET /jobs/status?job_id=...: a job's status."""
    job = await asyncio.to_thread(running().jobs.get, job_id(request), request.scope[USER_KEY])
    return JSONResponse(job.as_status())


async def retry_job(request: Request) -> Response:
    """POST /jobs/retry?job_id=...: put a failed job back in the queue without uploading it again (202)."""
    api = running()
    job = await asyncio.to_thread(api.jobs.retry, job_id(request), request.scope[USER_KEY])
    api.runner.wake()
    return JSONResponse(job.as_status(), status_code=202)


async def get_job_results(request: Request) -> Response:
    """GET /jobs/results?job_id=...: the predictions of a completed job (409 until then); as CSV with
    ``format=csv`` or ``Accept: text/csv``."""
    api = running()
    options = Options.of(request.query_params)
    job, chances = await asyncio.to_thread(api.runner.results, job_id(request), request.scope[USER_KEY])
    extras: dict[str, Any] = await api.job_extras(job, options, chances)
    if request.query_params.get("format", "").strip().lower() == "csv" or wants_csv(request.scope, False):
        return await answers.csv_response({"chances": chances, "model_tag": job.model_tag, **extras}, job_id=job.id)
    body = await asyncio.to_thread(results_json, job, chances, extras)
    return Response(body, media_type="application/json")


app = Starlette(
    routes=[
        Route("/model", get_model, methods=["GET"]),
        Route("/model/card", get_model_card, methods=["GET"]),
        Route("/jobs/status", get_job, methods=["GET"]),
        Route("/jobs/results", get_job_results, methods=["GET"]),
        Route("/jobs/retry", retry_job, methods=["POST"]),
    ],
    exception_handlers={ServiceError: _service_error},
)
