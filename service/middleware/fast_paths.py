"""Fast paths into the prediction routes, as ASGI middleware in front of BentoML's endpoints.

:class:`ColumnarBodies`, ``POST /predict_batch`` and ``POST /jobs`` read column by column
(service/columnar.py):
- a text/csv body is read here, whole, and answered here: CSV is not a body BentoML's typed APIs know;
- a JSON body that the column checks prove valid is answered here too, without one Python object
  per row; any other JSON body (a problem, ``?explain=true``) is validated here against the same
  pydantic contract BentoML's endpoint uses, naming the problems as it would (guard.invalid_body).
  Not in BentoML's endpoint, because that validates on the event loop (a 25 MB job body stalled the
  worker) and logs a traceback for every client's mistake.
- Bodies larger than :data:`INLINE_BYTES` are parsed in the parse pool (service/offload.py), which
  stops the work when the client leaves or times out.

:class:`SinglePredictions`, ``POST /predict``: a body the contract's pydantic model accepts is
answered here, without BentoML's per-request dispatch (routing, its input and output models, its
context), which was ~40% of a /predict (py-spy); any other body goes on to BentoML's endpoint.

Either way a request ends in the same methods (service/answers.py: ``answer_single``,
``answer_batch``, ``accept_job``), so an applicant gets the same chance, interval and job whichever
way it came in; the middleware before these (limits, media types, authentication) applies to all.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from core.contract import FEATURE_NAMES
from service import answers, columnar, offload
from service.answers import Answers
from service.errors import ServiceError
from service.middleware import USER_KEY, Receive, Scope, Send, header, read_body, replay, send_error
from service.middleware.guard import invalid_body, media_type_of
from service.schemas import ApplicantRow, as_rows

logger = logging.getLogger("admissions.api")
PATHS = frozenset({"/predict_batch", "/jobs"})
# Larger bodies are parsed in the parse pool: the event loop keeps serving. Measured worst cases on
# the loop: an invalid 4 KiB CSV body (read a cell at a time) 2.4 ms; a 64 KiB one 36 ms, too long.
INLINE_BYTES = 4 * 1024


class ColumnarBodies:
    """Answers CSV bodies, and JSON bodies proved valid column by column, on :data:`PATHS`."""

    def __init__(self, app: Any, api: Callable[[], Answers | None] = answers.current) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = self.api()
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in PATHS or api is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        csv_in = media_type_of(scope) == columnar.CSV_MEDIA_TYPE.encode()
        body = await read_body(receive)
        if body is None:
            return  # the client left (or BodyLimit refused the body and answered already)
        max_rows = api.row_limits(path, csv_in)
        if csv_in:
            work = functools.partial(columnar.rows_from_csv, body, max_rows)
        else:
            work = functools.partial(_json_rows, body, max_rows, api.request_model(path), path)

        async def answering() -> Response | _Gone | None:
            rows = work(offload.Abandon()) if len(body) <= INLINE_BYTES else await offload.parse(work, receive)
            if rows is None:
                return GONE
            if path == "/jobs":
                return await api.accept_job(rows, scope[USER_KEY])
            return await api.answer_batch(rows, Request(scope), wants_csv(scope, csv_in), scope[USER_KEY])

        await _answer(self.app, scope, receive, send, answering())


def _json_rows(body: bytes, max_rows: int, model: type[BaseModel], path: str, abandon: offload.Abandon) -> np.ndarray:
    """A JSON batch body as (n, 7) rows: column by column when the column checks vouch for it (most
    bodies), else by the pydantic contract, whose problems make the 400."""
    rows = columnar.rows_from_json(body, max_rows)
    if rows is not None:
        return rows
    abandon.check()
    try:
        request: Any = model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_body(path, exc.errors(include_url=False, include_context=False, include_input=False)) from None
    return as_rows(request.applicants)


class _Gone:
    """The client left while its body was read: there is no one to answer."""


GONE = _Gone()


# The contract's rules, into a plain dict (no model instance).
_APPLICANT: TypeAdapter[Any] = TypeAdapter(ApplicantRow)


class SinglePredictions:
    """Answers ``POST /predict`` when the body is a valid applicant."""

    def __init__(self, app: Any, api: Callable[[], Answers | None] = answers.current) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = self.api()
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/predict" or api is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return

        async def answering() -> Response | None:
            try:
                applicant = _APPLICANT.validate_json(body)
            except ValidationError:
                return None
            values = [float(applicant[name]) for name in FEATURE_NAMES]
            return await api.answer_single(values, QueryParams(scope["query_string"]), scope[USER_KEY])

        await _answer(self.app, scope, replay(body, receive), send, answering())


async def _answer(
    app: Any, scope: Scope, receive: Receive, send: Send, answering: Awaitable[Response | _Gone | None]
) -> None:
    """Send what ``answering`` gives; when it gives None, pass the request (``receive`` gives its body
    again) to BentoML's endpoint, which validates it against the contract and names the problems;
    nothing when the client has gone. An error is its answer (a 500 for a bug: never a request left
    hanging)."""
    try:
        response = await answering
    except ServiceError as exc:
        await send_error(send, exc)
        return
    except Exception:
        logger.exception("%s %s failed", scope["method"], scope["path"])
        await send_error(send, ServiceError("internal error: the server's log has the details"))
        return
    if response is GONE:
        return
    if response is None:
        await app(scope, receive, send)
        return
    assert isinstance(response, Response)
    await response(scope, receive, send)  # type: ignore[arg-type]  # an ASGI send, typed loosely here


def wants_csv(scope: Mapping[str, Any], csv_in: bool) -> bool:
    """CSV answers when ``Accept`` asks for text/csv and not JSON; JSON when it asks for JSON and not
    CSV; otherwise the answer is in the request's own format."""
    accept = header(scope, b"accept").lower()
    csv, json = b"text/csv" in accept, b"application/json" in accept
    if csv != json:
        return csv
    return csv_in
