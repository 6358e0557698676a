"""service/hop.py: the /predict hop to a separate single-model service, both ends, without BentoML.

The client is run against a real loopback HTTP server (asyncio streams) that drops a kept-alive
connection as its next request comes in, as uvicorn does when its keep-alive timeout and a new
request cross: the call must be sent again once, not fail. The end-to-end path (API container ->
single container) is checked by the container suite (tests/docker/test_stack.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest

from service import hop

FEATURES = [320.0, 110.0, 4.0, 4.5, 4.0, 9.1, 1.0]


async def _serve(answer: bytes, drop_second: bool, seen: list[bytes]) -> asyncio.Server:
    """Answers every request; with ``drop_second``, a connection's second request is read and the
    connection dropped unanswered (the server closed a kept-alive connection as the request came in)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for served in range(1_000):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
            body = await reader.readexactly(length)
            if drop_second and served == 1:
                writer.transport.abort()
                return
            seen.append(head + body)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("drop_second", [False, True])
def test_the_client_posts_the_features_and_survives_a_connection_the_server_closed(drop_second: bool) -> None:
    answer = orjson.dumps({"chance": 0.8, "model_tag": "admissions:x"})

    async def scenario() -> tuple[list[dict[str, Any]], list[bytes]]:
        seen: list[bytes] = []
        server = await _serve(answer, drop_second, seen)
        port = server.sockets[0].getsockname()[1]
        client = hop.SingleHop(f"http://127.0.0.1:{port}", token="t0ken")
        try:
            results = []
            for _ in range(3):
                results.append(await client.predict(FEATURES))
            return results, seen
        finally:
            await client.close()
            server.close()

    results, seen = asyncio.run(scenario())
    assert results == [{"chance": 0.8, "model_tag": "admissions:x"}] * 3
    assert len(seen) == 3
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert orjson.loads(body) == {"features": FEATURES}
    assert b"Authorization: Bearer t0ken" in head


def test_an_error_answer_is_an_error_not_a_prediction() -> None:
    async def scenario() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = hop.SingleHop(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", token=None)
        try:
            with pytest.raises(hop.HopError, match="403: forbidden"):
                await client.predict(FEATURES)
        finally:
            await client.close()
            server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "body",
    [b'{"features": [1, 2, 3]}', b'{"features": [1, 2, 3, 4, 5, 6, "7"]}', b'{"features": [1, 2, 3, 4, 5, 6, true]}',
     b'{"features": [1, 2, 3, 4, 5, 6, 7], "x": 1}', b"[1, 2, 3, 4, 5, 6, 7]", b"not json", b""],
)  # fmt: skip
def test_the_fast_path_leaves_every_other_body_to_bentomls_endpoint(body: bytes) -> None:
    assert hop.features_of(body) is None
    sent, passed = _call_fast_path(body)
    assert sent == [] and passed == [body]


def test_the_fast_path_answers_a_well_formed_call_with_the_models_prediction() -> None:
    assert hop.features_of(orjson.dumps({"features": FEATURES})) == FEATURES
    sent, passed = _call_fast_path(orjson.dumps({"features": FEATURES}))
    assert passed == []
    assert sent[0]["status"] == 200
    assert orjson.loads(sent[1]["body"]) == {"chance": 0.25 * sum(FEATURES), "model_tag": "admissions:x"}


class _Predictor:
    tag = "admissions:x"

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return np.atleast_2d(rows).sum(axis=1) * 0.25


class _Model:
    predictor = _Predictor()


def _call_fast_path(body: bytes) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The middleware around an app that records the body it was given (BentoML's endpoint)."""
    passed: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
        passed.append((await receive())["body"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = hop.PredictFastPath(endpoint, model=_Model)
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    return sent, passed
