"""The API's OpenAPI document: BentoML's, completed so that a browser and a client can use the API fully.

BentoML documents its POST APIs with a 200 and generic errors, under its own title and boilerplate.
This adds what a user of this API needs: the bearer security scheme (Swagger's Authorize button), the
GET routes of the mounted app, the real status codes of every route (202, 401, 404, 409, 413, 415, 429,
503), examples, and the project's title and version. service/middleware/docs.py serves it at /docs.json;
``make openapi`` (scripts/write_openapi.py) writes it to docs/openapi.yaml, which a test compares.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from service import __version__

TITLE = "Admissions API"
DESCRIPTION = """Chance of admission to graduate school, for admissions staff: **decision support, never an
automated decision**.

1. `POST /login` with your user name and password; copy `access_token` from the answer.
2. Press **Authorize** and paste the token. Tokens expire (see `expires_in`); log in again then.
3. `POST /predict` for one applicant, `POST /predict_batch` for up to the batch limit, or `POST /jobs`
   for large batches: poll `GET /jobs/status?job_id=...`, then fetch `GET /jobs/results?job_id=...`.

`/predict_batch` and `/jobs` also take `text/csv`: a header naming the seven fields (any order), then
one applicant per line; problems are named by line and column. A CSV batch is answered in CSV
(`chance,interval_low,interval_high`; `Accept: application/json` for JSON), and job results download
as CSV with `format=csv` or `Accept: text/csv`.

Every error answer is JSON with an `error` sentence; invalid bodies also list the first `problems`.
"""
PUBLIC = {"/login", "/healthz", "/livez", "/readyz", "/metrics"}
APPLICANT = {
    "gre_score": 320,
    "toefl_score": 110,
    "university_rating": 4,
    "sop": 4.5,
    "lor": 4.0,
    "cgpa": 9.1,
    "research": 1,
}
JOB_STATUS = {
    "job_id": "3f9c2a7e5b6d4e0f8a1b2c3d4e5f6a7b",
    "status": "pending",
    "rows": 2,
    "model_tag": None,
    "error": None,
    "note": None,
    "attempts": 0,
    "created_at": "2026-11-30T09:00:00+00:00",
    "started_at": None,
    "finished_at": None,
    "next_attempt_at": None,
}
ERRORS = {
    400: ("The body or a parameter breaks the contract; `problems` names the field and row", "ValidationError"),
    401: ("Missing, invalid, expired or revoked token; `reason` says which", "Error"),
    404: ("No such job for this user", "Error"),
    409: ("The job is not in a state that allows this (e.g. results before it completed)", "Error"),
    413: ("The body is larger than this route's limit; nothing was read", "Error"),
    415: ("The body is not `application/json` (or `text/csv`, where the route takes it)", "Error"),
    429: ("Too many failed logins, or too many of your jobs waiting; wait `Retry-After` seconds", "Error"),
    503: ("A model service or the jobs database is unavailable; `error` says which", "Error"),
}
SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what went wrong, in one sentence"}},
        "additionalProperties": True,
        "example": {"error": "token expired", "reason": "expired"},
    },
    "ValidationError": {
        "type": "object",
        "required": ["error", "problems", "problem_count"],
        "properties": {
            "error": {"type": "string"},
            "problems": {"type": "array", "items": {"type": "string"}, "description": "the first problems found"},
            "problem_count": {"type": "integer", "nullable": True, "description": "how many problems in all"},
        },
    },
    "JobResults": {
        "type": "object",
        "required": ["job_id", "model_tag", "rows", "chances"],
        "properties": {
            "job_id": {"type": "string"},
            "model_tag": {"type": "string"},
            "rows": {"type": "integer"},
            "chances": {"type": "array", "items": {"type": "number"}, "description": "in the order of the rows"},
            "intervals": {"type": "array", "nullable": True, "items": {"type": "array", "items": {"type": "number"}},
                          "description": "[low, high] per row, at interval_level"},
            "interval_level": {"type": "number", "nullable": True},
            "interval_note": {"type": "string", "description": "why there are no intervals, when there are none"},
            "prediction_ids": {"type": "array", "items": {"type": "string"}, "description": "per row, for "
                               "POST /outcomes: <job id>-<row>"},
        },
    },
    "ModelInfo": {"type": "object", "additionalProperties": True, "description": "the served model's tag, metrics, "
                  "training parameters and lineage, and whether retraining is recommended"},
    "Outcomes": {
        "type": "object", "required": ["outcomes"],
        "properties": {"outcomes": {"type": "array", "minItems": 1, "maxItems": 10000, "items": {
            "type": "object", "required": ["prediction_id", "outcome"],
            "properties": {
                "prediction_id": {"type": "string", "description": "as an answer gave it: <request id>-<row>"},
                "outcome": {"type": "number", "minimum": 0, "maximum": 1, "description": "the real outcome"}}}}},
    },
    "Monitoring": {"type": "object", "additionalProperties": True, "description": "per model: drift (PSI per "
                   "feature), realised RMSE and coverage per window with the outcomes behind them, and whether "
                   "retraining is recommended, with the reasons (docs/monitoring.md)"},
}  # fmt: skip


def _json(schema: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": ERRORS[code][0], "content": _json(ERRORS[code][1])} for code in codes}


def _job_id_parameter() -> dict[str, Any]:
    return {
        "name": "job_id",
        "in": "query",
        "required": True,
        "schema": {"type": "string"},
        "example": JOB_STATUS["job_id"],
    }


INTERVAL = {
    "name": "interval",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "example": "0.9",
    "description": "the interval's level, one of the calibrated ones (see /model), or `none`; default 0.9",
}
CSV_ROWS = (
    "gre_score,toefl_score,university_rating,sop,lor,cgpa,research\n320,110,4,4.5,4.0,9.1,1\n320,110,4,4.5,4.0,8.2,0\n"
)
OUTCOME_ID = "19af3c2b7e1d40c5a9e3b21-0"
CSV_ANSWER = (
    "prediction_id,chance,interval_low,interval_high\n19af3c2b7e1d40c5a9e3b21-0,0.8302,0.7344,0.926\n"
    "19af3c2b7e1d40c5a9e3b21-1,0.6421,0.5463,0.7379\n"
)
CSV_BODY = {
    "schema": {"type": "string", "description": "a header naming the seven fields, then one applicant per line"},
    "example": CSV_ROWS,
}
CSV_PREDICTIONS = {
    "schema": {"type": "string", "description": "chance[,interval_low,interval_high], a line per row in order; "
               "the model tag and interval level are in the X-Model-Tag and X-Interval-Level headers"},
    "example": CSV_ANSWER,
}  # fmt: skip
FORMAT = {
    "name": "format",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["json", "csv"]},
    "description": "`csv` for a CSV download (as `Accept: text/csv`); JSON by default",
}
EXPLAIN = {
    "name": "explain",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "add each feature's contribution to the chance (docs/model-card.md)",
}


def _get_routes() -> dict[str, Any]:
    """The routes of the mounted Starlette app, which BentoML does not document."""
    job_status = _json("JobStatus", {**JOB_STATUS, "status": "completed", "model_tag": "admissions:7b0d379393bd7765"})
    return {
        "/jobs/status": {"get": {
            "summary": "A job's status", "tags": ["Jobs"], "operationId": "job_status",
            "parameters": [_job_id_parameter()],
            "responses": {"200": {"description": "The job's status", "content": job_status},
                          **_errors(400, 401, 404, 503)},
        }},
        "/jobs/results": {"get": {
            "summary": "A completed job's predictions", "tags": ["Jobs"], "operationId": "job_results",
            "parameters": [_job_id_parameter(), INTERVAL, FORMAT],
            "responses": {
                "200": {"description": "The predictions, in row order", "content": {**_json("JobResults", {
                    "job_id": JOB_STATUS["job_id"], "model_tag": "admissions:7b0d379393bd7765", "rows": 2,
                    "chances": [0.8302, 0.6421]}), "text/csv": CSV_PREDICTIONS}},
                **_errors(400, 401, 404, 409, 503),
            },
        }},
        "/jobs/retry": {"post": {
            "summary": "Run a failed job again, without uploading it again", "tags": ["Jobs"],
            "operationId": "retry_job", "parameters": [_job_id_parameter()],
            "responses": {"202": {"description": "Queued again", "content": _json("JobStatus", JOB_STATUS)},
                          **_errors(400, 401, 404, 409, 503)},
        }},
        "/model/card": {"get": {
            "summary": "The served model's card: intended use, data, metrics, limitations", "tags": ["Model"],
            "operationId": "model_card",
            "responses": {"200": {"description": "The model card", "content": {"text/markdown": {"schema": {
                "type": "string"}}}}, "404": {"description": "The model was registered without a card",
                "content": _json("Error")}, **_errors(401, 503)},
        }},
        "/outcomes": {"post": {
            "summary": "Record the real outcome of predictions, by prediction id (all or none)",
            "tags": ["Monitoring"], "operationId": "record_outcomes",
            "requestBody": {"required": True, "content": {
                **_json("Outcomes", {"outcomes": [{"prediction_id": OUTCOME_ID, "outcome": 1.0}]}),
                "text/csv": {"schema": {"type": "string"}, "example": f"prediction_id,outcome\n{OUTCOME_ID},1\n"}}},
            "responses": {"200": {"description": "Recorded", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"recorded": {"type": "integer"}}},
                "example": {"recorded": 1}}}},
                "404": {"description": "No such prediction in the log; `row` names the row", "content": _json("Error")},
                "409": {"description": "That prediction already has an outcome; `row` names the row",
                        "content": _json("Error")},
                **_errors(400, 401, 413, 415, 503)},
        }},
        "/monitoring": {"get": {
            "summary": "Drift, realised accuracy and coverage per model, and whether retraining is recommended",
            "tags": ["Monitoring"], "operationId": "monitoring",
            "responses": {"200": {"description": "The figures", "content": _json("Monitoring")},
                          **_errors(401, 503)},
        }},
        "/model": {"get": {
            "summary": "The served model: tag, metrics, training parameters", "tags": ["Model"],
            "operationId": "model", "responses": {"200": {"description": "The model", "content": _json("ModelInfo")},
                                                  **_errors(401, 503)},
        }},
    }  # fmt: skip


# Per POST route: (tag, success status, example request, example answer, error statuses).
_POST_ROUTES: dict[str, tuple[str, int, Any, Any, tuple[int, ...]]] = {
    "/login": ("Authentication", 200, {"username": "alice", "password": "correct horse battery"},
               {"access_token": "eyJhbGciOiJIUzI1NiIs...", "token_type": "bearer", "expires_in": 1800},
               (400, 401, 413, 415, 429, 503)),
    "/predict": ("Predictions", 200, APPLICANT, {"chance": 0.8302, "model_tag": "admissions:7b0d379393bd7765",
                                                 "prediction_id": "19af3c2b7e1d40c5a9e3b21-0"},
                 (400, 401, 413, 415, 503)),
    "/predict_batch": ("Predictions", 200, {"applicants": [APPLICANT, {**APPLICANT, "cgpa": 8.2, "research": 0}]},
                       {"chances": [0.8302, 0.6421], "model_tag": "admissions:7b0d379393bd7765",
                        "prediction_ids": ["19af3c2b7e1d40c5a9e3b21-0", "19af3c2b7e1d40c5a9e3b21-1"]},
                       (400, 401, 413, 415, 503)),
    "/jobs": ("Jobs", 202, {"applicants": [APPLICANT, {**APPLICANT, "cgpa": 8.2, "research": 0}]}, JOB_STATUS,
              (400, 401, 413, 415, 429, 503)),
}  # fmt: skip


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's document of the service, completed (a new dict; ``spec`` is not changed)."""
    # "ApplicantIODescriptor" and the like are BentoML's internal names: users see the request's own.
    doc: dict[str, Any] = json.loads(json.dumps(spec).replace("IODescriptor", ""))
    doc["info"] = {"title": TITLE, "version": __version__, "description": DESCRIPTION}
    doc["tags"] = [
        {"name": name, "description": text}
        for name, text in (
            ("Authentication", "Log in for a bearer token"),
            ("Predictions", "Chances of admission, at once"),
            ("Jobs", "Large batches, run in the background; they survive restarts"),
            ("Model", "What is being served"),
            ("Monitoring", "Real outcomes, and how the served model does on them"),
            ("Infrastructure", "Health and metrics (no token needed)"),
        )
    ]
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    schemas = components.setdefault("schemas", {})
    for unused in ("TaskStatusResponse", "InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(unused, None)
    schemas.update(copy.deepcopy(SCHEMAS))
    paths = doc.setdefault("paths", {})
    for route, (tag, status, request, answer, errors) in _POST_ROUTES.items():
        operation = paths.get(route, {}).get("post")
        if operation is None:
            continue
        success = operation["responses"].get("200", operation["responses"].get(200, {}))
        for content in success.get("content", {}).values():
            content["example"] = answer
        operation["responses"] = {str(status): {**success, "description": "OK" if status == 200 else "Accepted"}}
        if route == "/jobs":  # how a client (or schemathesis) goes from a submitted job to its other routes
            job = {"job_id": "$response.body#/job_id"}
            operation["responses"]["202"]["links"] = {
                name: {"operationId": target, "parameters": job}
                for name, target in (("status", "job_status"), ("results", "job_results"), ("retry", "retry_job"))
            }
        operation["responses"].update(_errors(*errors))
        operation["tags"] = [tag]
        operation["summary"] = (operation.get("description") or "").split("\n")[0]
        for content in operation.get("requestBody", {}).get("content", {}).values():
            content["example"] = request
        if route in ("/predict", "/predict_batch"):
            operation["parameters"] = [INTERVAL, EXPLAIN]
        if route in (
            "/predict_batch",
            "/jobs",
        ):  # the fast paths take them; BentoML cannot describe CSV
            operation.setdefault("requestBody", {}).setdefault("content", {})["text/csv"] = copy.deepcopy(CSV_BODY)
        if route == "/predict_batch":
            operation["responses"]["200"].setdefault("content", {})["text/csv"] = copy.deepcopy(CSV_PREDICTIONS)
    paths.update(_get_routes())
    for route, item in paths.items():
        for operation in item.values():
            if route not in PUBLIC and operation.get("tags") != ["Infrastructure"]:
                operation["security"] = [{"bearerAuth": []}]
    return doc
