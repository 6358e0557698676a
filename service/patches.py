"""Two work-arounds for defects of the pinned BentoML (1.4.40), applied when a service module is imported.

Each replaces one BentoML function wholesale, so each is guarded: it is applied only when the installed
BentoML is the version it was written for and the function's source is the one it replaces (a sha256
of ``inspect.getsource``). Otherwise the service does not start, with one sentence: a version bump must
re-check the patch instead of silently reverting an upstream change. docs/dependencies.md has the
upstream report text for both.

1. The request timer (``TimeoutMiddleware.__call__``).

BentoML's ``TimeoutMiddleware`` schedules ``loop.call_later(timeout, ...)`` for every request and never
cancels it. Each timer keeps a copy of the request's context (the request, its tracing span, ...)
alive for the whole traffic timeout (60 s), so at ~600 req/s some 36,000 requests' objects stay
live. Python's full garbage collections then walk all of them, and every 1-2 s a worker stopped
for 50-370 ms, growing with the heap: that was the whole p99 of /predict (found with a heap census
per type: TimerHandle, Future, Context and span objects grew by one per request; with GC disabled
the stalls vanished). Same defect class as asyncpg#830. The replacement below is the upstream code
plus ``handle.cancel()`` once the response has started, plus one more fix: upstream waits for the
first ``send`` or the timeout, so a request whose app returns without answering (its client left:
service/middleware/fast_paths.py) stayed alive for the whole 60 s, and a SIGTERM waited for it. Unchanged in
BentoML 1.4.40 (``_internal/server/http/traffic.py`` is byte for byte the same).

2. The client session refresh (``SessionManager.get_session``, new in 1.4.31). The HTTP client one
service uses to call another replaces its aiohttp session every 100 requests or 5 minutes and *closes
the old one at once*, while other calls are still in flight on it: they fail with
``ServerDisconnectedError`` or ``Session is closed``. Under load that dropped ~1% of API -> model
service calls, and with three long job chunks in flight every chunk failed for minutes (the memory-limit
fault test). The replacement refreshes the same way but closes the old session only after the client's
timeout, when every call on it has ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import Callable
from typing import Any

BENTOML_VERSION = "1.4.40"
# sha256 (first 16 hex digits) of the source of each function replaced here, as BENTOML_VERSION has it.
_REPLACED = {
    "TimeoutMiddleware.__call__": "fd8b9e3da28ed2b4",
    "SessionManager.get_session": "eb743006199bc0b5",
}
_MARK = "_admissions_patched"


class PatchMismatchError(RuntimeError):
    """The installed BentoML is not the one a patch was written for."""


def _guard(function: Callable[..., Any]) -> None:
    import bentoml

    name = function.__qualname__
    found = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]
    if bentoml.__version__ != BENTOML_VERSION or found != _REPLACED[name]:
        raise PatchMismatchError(
            f"service/patches.py replaces BentoML's {name} as BentoML {BENTOML_VERSION} has it, but BentoML "
            f"{bentoml.__version__} is installed (source sha256 {found}): re-check the patch against this "
            "version (docs/dependencies.md) before serving"
        )


def apply() -> None:
    """Both patches, once per process; PatchMismatchError (one sentence) on another BentoML."""
    cancel_request_timers()
    close_old_sessions_later()


def cancel_request_timers() -> None:
    """Replace ``TimeoutMiddleware.__call__`` with one that cancels its timer (idempotent)."""
    from bentoml._internal.server.http import traffic

    middleware = traffic.TimeoutMiddleware
    if getattr(middleware.__call__, _MARK, False):
        return
    _guard(middleware.__call__)

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

    setattr(__call__, _MARK, True)
    middleware.__call__ = __call__  # type: ignore[method-assign]


def close_old_sessions_later() -> None:
    """Replace ``SessionManager.get_session`` with one that lets in-flight calls finish (idempotent)."""
    from _bentoml_impl.client.proxy2 import SessionManager

    if getattr(SessionManager.get_session, _MARK, False):
        return
    _guard(SessionManager.get_session)

    async def get_session(self: Any) -> Any:
        if self._session is None or self._should_refresh():
            old, self._session = self._session, self._make_client()
            self._created_at = time.monotonic()
            self._request_count = 0
            if old is not None:  # calls may still run on it: close it once the longest of them has ended
                grace = (self._timeout.total or 60.0) + 1.0
                asyncio.get_running_loop().call_later(grace, lambda: asyncio.ensure_future(old.close()))
        self._request_count += 1
        return self._session

    setattr(get_session, _MARK, True)
    SessionManager.get_session = get_session  # type: ignore[method-assign]
