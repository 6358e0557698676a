"""The patched TimeoutMiddleware of BentoML (service/patches.py), in-process."""

from __future__ import annotations

import asyncio
from typing import Any

from service.patches import cancel_request_timers


def _middleware(app: Any, timeout: float) -> Any:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    cancel_request_timers()
    return TimeoutMiddleware(app, timeout=timeout)


async def _receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def test_a_request_whose_app_returns_without_answering_ends_at_once() -> None:
    """Its client left: nothing to send. Upstream waited for the first send or the 60 s timeout, and a
    SIGTERM waited with it."""

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def call() -> None:
        await asyncio.wait_for(_middleware(silent, timeout=60)({"type": "http"}, _receive, send), timeout=5)

    asyncio.run(call())
    assert sent == []


async def _answers(app: Any, timeout: float) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(_middleware(app, timeout)({"type": "http"}, _receive, send), timeout=5)
    return sent


def test_the_timeout_still_answers_504_and_a_normal_answer_passes() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    async def quick(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    assert asyncio.run(_answers(slow, 0.2))[0]["status"] == 504
    assert asyncio.run(_answers(quick, 60))[0]["status"] == 200
