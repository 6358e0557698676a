"""A work-around for a defect of the pinned BentoML (1.4.30), applied when a service module is imported.

BentoML's ``TimeoutMiddleware`` schedules ``loop.call_later(timeout, ...)`` for every request and never
cancels it. Each timer keeps a copy of the request's context (the request, its tracing span, ...)
alive for the whole traffic timeout (60 s), so at ~600 req/s some 36,000 requests' objects stay
live. Python's full garbage collections then walk all of them, and every 1-2 s a worker stopped
for 50-370 ms, growing with the heap: that was the whole p99 of /predict (found with a heap census
per type: TimerHandle, Future, Context and span objects grew by one per request; with GC disabled
the stalls vanished). Same defect class as asyncpg#830. The replacement below is the upstream code
plus ``handle.cancel()`` once the response has started, plus one more fix: upstream waits for the
first ``send`` or the timeout, so a request whose app returns without answering (its client left:
service/fast_paths.py) stayed alive for the whole 60 s, and a SIGTERM waited for it. Unchanged in
BentoML 1.4.40 (``_internal/server/http/traffic.py`` is byte for byte the same).
"""

from __future__ import annotations

import asyncio
from typing import Any

_MARK = "_admissions_cancels_timer"


def cancel_request_timers() -> None:
    """Replace ``TimeoutMiddleware.__call__`` with one that cancels its timer (idempotent)."""
    from bentoml._internal.server.http import traffic

    middleware = traffic.TimeoutMiddleware
    if getattr(middleware, _MARK, False):
        return

    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:  # noqa: N807
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        handle = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)

        # An app that returns without answering (its client left) must not keep this request alive
        # until the timeout: a SIGTERM waited those 60 s for every such request.
        def _returned(_: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(_returned)
        try:
            await waiter
        except TimeoutError:
            if task.cancel():
                from starlette.responses import JSONResponse

                body = {"error": f"Not able to process the request in {self.timeout} seconds"}
                await JSONResponse(body, status_code=504)(scope, receive, send)
        else:
            await task
        finally:
            handle.cancel()

    middleware.__call__ = __call__  # type: ignore[method-assign]
    setattr(middleware, _MARK, True)
