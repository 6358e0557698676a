"""CPU-heavy request work (reading a batch or job body) off the event loop, in a pool of its own, and
stopped once nobody waits for it.

- Off the loop: a body parsed on the event loop stalls every other request of the worker (a 32,000-
  column CSV header once held it 0.37 s); only bodies measured to parse in a few milliseconds at worst
  stay on it (fast_paths.INLINE_BYTES).
- Its own pool: ``asyncio.to_thread``'s default pool runs the logins, job reads and the readiness
  probe. Twenty slow bodies once took every thread of it, and /login, /jobs/status and /readyz hung
  behind them. One thread: parsing holds the GIL most of the time, so more threads per worker would
  only queue inside the interpreter instead of here.
- Abandoned work stops: while a body is parsed its client is watched; when the client leaves
  (``http.disconnect``), or the request is cancelled (BentoML's traffic timeout, a shutdown), the
  parse's :class:`Abandon` is set. A parse still queued then never starts, and the long loop of
  a parse (columnar.csv_problems, a cell at a time) checks it and stops.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.types import Receive

T = TypeVar("T")
_STOPPING = threading.Event()  # the worker shuts down: every parse stops (a SIGTERM must not wait for one)


class AbandonedError(Exception):
    """Nobody waits for this work any more."""


class Abandon:
    """Set when a parse's result is no longer wanted; the parse calls :meth:`check` in its long loops."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set() or _STOPPING.is_set():
            raise AbandonedError("the request was abandoned")


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="admissions-parse")


async def parse(work: Callable[[Abandon], T], receive: Receive | None = None) -> T | None:
    """``work(abandon)`` in the parse pool; None when the client left first (nothing to answer)."""
    abandon = Abandon()

    def run() -> T:
        abandon.check()  # queued behind others while its client left or timed out: never starts
        return work(abandon)

    result = asyncio.wrap_future(_pool().submit(run))
    watcher: asyncio.Future[Any] | None = None
    if receive is not None:
        watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        if watcher is not None:
            waiting: set[asyncio.Future[Any]] = {result, watcher}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not result.done():
                abandon.set()
                result.cancel()
                return None
        return await result
    except BaseException:  # cancelled (traffic timeout, shutdown) or failed: stop the thread's work too
        abandon.set()
        raise
    finally:
        if watcher is not None:
            watcher.cancel()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the body was read whole, so nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def stop() -> None:
    """The worker is shutting down: parses stop at their next check, queued ones never start."""
    _STOPPING.set()
