"""The ASGI middleware in-process, with Starlette's test client: the same stack order as service/api.py,
around a small app that echoes what reached it. (The end-to-end tests check the real server.)"""

from __future__ import annotations

import secrets
import warnings
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service import auth
from service.middleware import USER_KEY, header
from service.middleware.auth import BearerAuthMiddleware
from service.middleware.guard import BodyLimit, JsonBodiesOnly, NoQueryParameters

with warnings.catch_warnings():  # this Starlette asks for httpx2 and warns on httpx (the lock's): same client
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

POLICY = auth.TokenPolicy(secrets.token_bytes(32), "test-issuer", "test-audience", 600)


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"user": request.scope.get(USER_KEY), "bytes": len(body)})


def client(policy: auth.TokenPolicy | None = POLICY) -> TestClient:
    app: Any = Starlette(
        routes=[Route(path, echo, methods=["GET", "POST"]) for path in ("/predict", "/jobs", "/login")]
    )
    # Outermost last, as add_asgi_middleware stacks them in service/api.py (the first added is outermost).
    app = NoQueryParameters(app, paths={"/jobs": "ask with the job id instead"})
    app = BearerAuthMiddleware(app, policy=lambda: policy)
    app = JsonBodiesOnly(app, csv_paths=frozenset({"/jobs"}))
    app = BodyLimit(app, limits={"/login": 100}, default=1_000, csv_limits={"/jobs": 2_000})
    return TestClient(app)


def bearer(subject: str = "user-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.issue(POLICY, subject).access_token}"}


def test_a_valid_token_reaches_the_app_with_its_subject() -> None:
    answer = client().post("/predict", json={"a": 1}, headers=bearer("user-7"))
    assert answer.status_code == 200
    assert answer.json()["user"] == "user-7"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing"), ({"Authorization": "Bearer not-a-token"}, "invalid"), ({"Authorization": "Basic eA=="}, "")],
)
def test_no_usable_token_is_a_401_that_says_why(headers: dict[str, str], reason: str) -> None:
    answer = client().post("/predict", json={}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert reason in answer.json().get("reason", "")


def test_public_routes_need_no_token_and_a_starting_service_answers_503() -> None:
    assert client().post("/login", json={}).status_code == 200
    starting = client(policy=None).post("/predict", json={}, headers=bearer())
    assert starting.status_code == 503
    assert "starting" in starting.json()["error"]


def test_a_body_over_its_route_limit_is_refused_before_the_app_reads_it() -> None:
    assert client().post("/login", content=b"x" * 101, headers={"Content-Type": "application/json"}).status_code == 413
    big = client().post(
        "/predict", content=b"{}" + b" " * 2_000, headers={**bearer(), "Content-Type": "application/json"}
    )
    assert big.status_code == 413
    assert "1,000 bytes" in big.json()["error"]


def test_csv_is_taken_only_where_declared_and_pickle_nowhere() -> None:
    csv = {**bearer(), "Content-Type": "text/csv"}
    assert client().post("/jobs", content=b"a,b\n1,2\n", headers=csv).status_code == 200
    refused = client().post("/predict", content=b"a,b\n1,2\n", headers=csv)
    assert refused.status_code == 415
    assert "application/json" in refused.json()["error"]
    pickled = {**bearer(), "Content-Type": "application/octet-stream"}
    assert client().post("/jobs", content=b"\x80\x04", headers=pickled).status_code == 415


def test_a_query_string_where_none_is_taken_is_a_400_that_says_what_to_do() -> None:
    answer = client().post("/jobs?explain=true", json={}, headers=bearer())
    assert answer.status_code == 400
    assert "ask with the job id instead" in answer.json()["error"]


def test_header_finds_the_first_value_by_lower_case_name() -> None:
    scope = {"headers": [(b"accept", b"text/csv"), (b"accept", b"application/json")]}
    assert header(scope, b"accept") == b"text/csv"
    assert header(scope, b"authorization") == b""
