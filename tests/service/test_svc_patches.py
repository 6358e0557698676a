"""The patched TimeoutMiddleware of BentoML (service/patches.py), in-process."""

from __future__ import annotations

import asyncio
from typing import Any

from service import patches
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


def test_a_session_refresh_lets_calls_in_flight_on_the_old_session_finish() -> None:
    """Upstream closes the old aiohttp session at once when it refreshes it (every ``max_requests``
    calls): concurrent calls still running on it failed with ServerDisconnectedError."""
    from _bentoml_impl.client.proxy2 import SessionManager
    from aiohttp import web

    patches.close_old_sessions_later()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.Response(text="ok")

    async def scenario() -> list[str]:
        app = web.Application()
        app.router.add_get("/", slow)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        manager = SessionManager(f"http://127.0.0.1:{port}", timeout=5, headers={}, max_requests=2)

        async def call() -> str:
            session = await manager.get_session()
            async with session.get("/") as answer:
                return await answer.text()

        try:
            return list(await asyncio.gather(*(call() for _ in range(12)), return_exceptions=True))  # type: ignore[arg-type]
        finally:
            await manager.close()
            await runner.cleanup()

    answers = asyncio.run(scenario())
    assert answers == ["ok"] * 12, answers


def test_a_patch_for_another_bentoml_stops_the_service_with_one_sentence(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import bentoml
    import pytest

    monkeypatch.setattr(bentoml, "__version__", "1.4.99")

    def replaced() -> None:
        """Not the function the patch was written for."""

    replaced.__qualname__ = "SessionManager.get_session"
    with pytest.raises(
        patches.PatchMismatchError, match=r"as BentoML 1\.4\.40 has it, but BentoML 1\.4\.99 is installed"
    ):
        patches._guard(replaced)
