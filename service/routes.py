"""The API's routes that are not BentoML APIs: a small Starlette app mounted on the API server.

The GET routes (BentoML APIs are POST-only), the retry of a job, and the outcomes, whose body is a list
of ids and numbers rather than applicants. Authentication is the same middleware as for every route
(service/middleware/auth.py). A :class:`ServiceError` from any of them becomes its JSON
answer in one exception handler; the running API is reached through ``bentoml.get_current_service()``.
"""

from __future__ import annotations

import asyncio
import csv
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import answers
from service.errors import InvalidInputError, ServiceError, ServiceUnavailableError
from service.extras import Options
from service.middleware import USER_KEY
from service.middleware.fast_paths import wants_csv
from service.middleware.guard import media_type_of
from service.predlog import prediction_ids, shown
from service.runner import results_json
from service.settings import MAX_OUTCOMES


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
    """GET /model: the serving model's tag, metrics and training parameters, and whether retraining is
    recommended (service/monitoring.py)."""
    api = running()
    info = await api.model_info()
    if api.monitor is not None:
        figures = api.monitor.snapshot["models"].get(info.get("model_tag"), {})
        info["monitoring"] = {
            "retrain_recommended": figures.get("retrain_recommended", False),
            "reasons": figures.get("reasons", []),
            "details": "GET /monitoring",
        }
    return JSONResponse(info)


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
        logged = {"request_id": job.id} if api.log is not None else {}
        table = {"chances": chances, "model_tag": job.model_tag, **extras, **logged}
        return await answers.csv_response(table, job_id=job.id)
    if api.log is not None:  # a job's rows are logged under its id (service/predlog.py)
        extras["prediction_ids"] = prediction_ids(job.id, len(chances))
    body = await asyncio.to_thread(results_json, job, chances, extras)
    return Response(body, media_type="application/json")


async def post_outcomes(request: Request) -> Response:
    """POST /outcomes: the real outcome of predictions, by prediction id. JSON
    ``{"outcomes": [{"prediction_id": "...", "outcome": 0.7}, ...]}`` or CSV ``prediction_id,outcome``;
    all recorded or none (a 4xx naming the first bad row)."""
    api = running()
    if api.log is None:
        raise ServiceUnavailableError("the prediction log is off (ADMISSIONS_PREDICTION_LOG=off): no outcomes")
    try:
        body = await request.body()
    except ClientDisconnect:  # the client hung up mid-body: nobody to answer, nothing worth a traceback
        return Response(status_code=400)
    items, rows = outcome_items(body, media_type_of(request.scope) == b"text/csv")
    recorded = await asyncio.to_thread(api.log.record_outcomes, items, request.scope[USER_KEY], rows)
    return JSONResponse({"recorded": recorded})


OUTCOMES_SHAPE = '{"outcomes": [{"prediction_id": "...", "outcome": 0.7}, ...]}'


def outcome_items(body: bytes, as_csv: bool) -> tuple[list[tuple[Any, Any]], list[int] | None]:
    """(prediction id, outcome) pairs from a JSON or CSV body, or a 400 that says what is wrong; and, for
    a CSV, each pair's row in the file (its blank lines count, so later checks name the row it has)."""
    if as_csv:
        # The csv module reads the quoted cells spreadsheets write ("id","0.7"); a line at a time, so a
        # row's number is its line's.
        lines = body.decode("utf-8-sig", errors="replace").splitlines()
        if not lines or [name.strip() for name in _cells(lines[0], 0)] != ["prediction_id", "outcome"]:
            raise InvalidInputError("a CSV of outcomes starts with the header prediction_id,outcome")
        items: list[tuple[Any, Any]] = []
        numbers: list[int] = []
        for number, line in enumerate(lines[1:], start=1):
            if not line.strip():
                continue
            cells = [cell.strip() for cell in _cells(line, number)]
            if len(cells) != 2:
                raise InvalidInputError(f"row {number}: two cells expected, got {len(cells)}", row=number)
            try:
                items.append((cells[0], float(cells[1])))
            except ValueError:
                message = f"row {number}: outcome {shown(cells[1])} is not a number"
                raise InvalidInputError(message, row=number) from None
            numbers.append(number)
        rows: list[int] | None = numbers
    else:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep, within the size limit
            raise InvalidInputError(
                'the body is not JSON: send {"outcomes": [{"prediction_id": ..., "outcome": ...}]}'
            ) from None
        entries = parsed.get("outcomes") if isinstance(parsed, dict) else None
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise InvalidInputError(f"send {OUTCOMES_SHAPE}")
        items = [(entry.get("prediction_id"), entry.get("outcome")) for entry in entries]
        rows = None
    if len(items) > MAX_OUTCOMES:
        raise InvalidInputError(f"at most {MAX_OUTCOMES:,} outcomes a request, got {len(items):,}")
    return items, rows


def _cells(line: str, number: int) -> list[str]:
    """The cells of one CSV line (row ``number``; 0 is the header)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error as exc:  # e.g. a cell over the csv module's 128 KiB limit (was a 500)
        if number == 0:
            raise InvalidInputError(f"the header: {exc}") from None
        raise InvalidInputError(f"row {number}: {exc}", row=number) from None


async def get_monitoring(request: Request) -> Response:
    """GET /monitoring: drift, realised accuracy and coverage per model, and whether retraining is advised."""
    api = running()
    if api.monitor is None:
        raise ServiceUnavailableError("the prediction log is off (ADMISSIONS_PREDICTION_LOG=off): no monitoring")
    return JSONResponse(api.monitor.snapshot)


app = Starlette(
    routes=[
        Route("/model", get_model, methods=["GET"]),
        Route("/model/card", get_model_card, methods=["GET"]),
        Route("/jobs/status", get_job, methods=["GET"]),
        Route("/jobs/results", get_job_results, methods=["GET"]),
        Route("/jobs/retry", retry_job, methods=["POST"]),
        Route("/outcomes", post_outcomes, methods=["POST"]),
        Route("/monitoring", get_monitoring, methods=["GET"]),
    ],
    exception_handlers={ServiceError: _service_error},
)
