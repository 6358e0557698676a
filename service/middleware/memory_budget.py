"""A memory budget for the request bodies an API worker holds at once, from the container's limits.

A batch or job body costs many times its size while it is read, parsed and answered (measured in the
compose stack's API container, cgroup ``memory.max_usage_in_bytes`` around one request on a fresh
worker: a 100,000-row CSV ``/predict_batch`` body of 2.5 MB +60 MiB; a 400,000-row CSV job of 9.8 MB
+136 MiB; a 100,000-row JSON job of 11.7 MB +71 MiB). Sixteen concurrent 100,000-row CSV batches once
got a 768 MB API container's worker OOM-killed, with every request it was serving. So:

- each POST body on a budgeted route reserves ``size x COST_PER_BYTE[route, media type]`` before it is
  read (its Content-Length; a chunked body reserves its route's limit), and gives it back when its
  answer is sent or its client has gone;
- a body that would take the worker's reservations over its budget is refused at once with 503 and
  ``Retry-After`` (uvicorn drops the rest of the body and keeps the connection, so the client sees the
  answer, not a reset); a worker with nothing reserved admits any body within the route's size limit,
  so the largest documented body always gets through on its own;
- a job the worker runs holds its rows' share too (service/runner.py), waiting for the bodies in flight
  to leave room; a 202 gives the upload's reservation back while the job is still to run;
- the budget per worker is ``(cgroup memory limit - BASE_BYTES - workers x WORKER_BYTES) x SAFETY /
  workers``, or ``ADMISSIONS_MEMORY_BUDGET_MB`` when set; no limit (no cgroup limit, e.g. ``make
  serve`` on a laptop, and the variable unset) means no budget.

The limits themselves are read in service/container_limits.py.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Mapping
from typing import Any

from service.errors import ServiceUnavailableError
from service.middleware import Receive, Scope, Send, send_error
from service.middleware.guard import content_length, media_type_of

# What a body costs in memory per byte of it while it is served (the measurements above, rounded up).
COST_PER_BYTE = {
    ("/predict_batch", True): 24,  # CSV: the text, pandas' parse, the columns, the CSV answer
    ("/jobs", True): 16,
    ("/predict_batch", False): 10,  # JSON
    ("/jobs", False): 8,
}
RETRY_AFTER_S = 2
HOLD_POLL_S = 0.05
TRIM_AFTER_BYTES = 64 * 2**20  # a body that cost this much leaves pages worth giving back


def cost(path: str, csv: bool, size: int) -> int:
    return COST_PER_BYTE[path, csv] * size


def give_back_freed_memory() -> None:
    """Return the allocator's free pages to the system (glibc ``malloc_trim``; elsewhere nothing): a
    worker kept +240 MiB of RSS after a million-row job, memory that no budget counted any more."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


class MemoryBusyError(ServiceUnavailableError):
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_S)}


class Budget:
    """The bytes this worker's admitted bodies and its running job may cost at once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.reserved = 0
        self.admitted = 0
        self.wanted = 0  # what a job waiting to run needs: no body is admitted past it meanwhile

    def take(self, amount: int) -> bool:
        if (self.admitted or self.wanted) and self.reserved + self.wanted + amount > self.capacity:
            return False
        self.reserved += amount
        self.admitted += 1
        return True

    async def hold(self, amount: int) -> None:
        """Take ``amount`` for a job this worker runs, once the bodies in flight leave room for it (an
        accepted job must run, so it waits rather than being refused); give it back with :meth:`give`."""
        self.wanted = amount
        try:
            while self.admitted and self.reserved + amount > self.capacity:
                await asyncio.sleep(HOLD_POLL_S)
        finally:
            self.wanted = 0
        self.reserved += amount
        self.admitted += 1

    def give(self, amount: int) -> None:
        self.reserved -= amount
        self.admitted -= 1


class MemoryBudget:
    """Admits POST bodies on ``limits``' routes while the worker's budget has room (see the module doc)."""

    def __init__(
        self, app: Any, budget: Callable[[], Budget | None], limits: Mapping[str, int], csv_limits: Mapping[str, int]
    ) -> None:
        self.app = app
        self.budget = budget
        self.limits, self.csv_limits = limits, csv_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        budget = self.budget() if scope["type"] == "http" and scope["method"] == "POST" else None
        path = scope.get("path", "")
        if budget is None or path not in self.limits:
            await self.app(scope, receive, send)
            return
        csv = media_type_of(scope) == b"text/csv"
        declared = content_length(scope)
        size = declared if declared is not None else (self.csv_limits if csv else self.limits)[path]
        amount = cost(path, csv, size)
        if not budget.take(amount):
            await send_error(
                send,
                MemoryBusyError(
                    f"the server holds as many {path} bodies as its memory allows: send this one again in "
                    f"{RETRY_AFTER_S} s"
                ),
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            budget.give(amount)
            if amount >= TRIM_AFTER_BYTES:
                await asyncio.to_thread(give_back_freed_memory)
