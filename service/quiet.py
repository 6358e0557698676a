"""A client's mistake costs the log at most one short line, and only a few of those a minute.

BentoML logs every request its own parser refuses (a pydantic ``ValidationError``, a 4xx
``BentoMLException``) with the full traceback: ~2.2 KB per malformed ``POST /login``, so any client
could fill the disk and bury real errors. :class:`ClientErrorsInBrief` rewrites those records to one
line naming the route and the first problem, and :class:`RateLimited` lets through a few such lines
per interval and counts the rest. A server's own failure (any other exception) keeps its traceback.
"""

from __future__ import annotations

import logging
import threading
import time

from pydantic import ValidationError

# BentoML's ``log_exception`` logs through this logger: "Exception on /login [POST]".
BENTOML_LOGGER = "bentoml._internal.server.http_app"
LINES_PER_INTERVAL = 5
INTERVAL_S = 60.0


class RateLimited:
    """At most ``lines`` messages per ``interval_s``; the first message after a quiet spell says how
    many were left out."""

    def __init__(self, lines: int = LINES_PER_INTERVAL, interval_s: float = INTERVAL_S) -> None:
        self.lines, self.interval_s = lines, interval_s
        self._lock = threading.Lock()
        self._start = -float("inf")
        self._sent = self._dropped = 0

    def admit(self) -> int | None:
        """None to drop this message; else how many were dropped before it (to say so)."""
        with self._lock:
            now = time.monotonic()
            if now - self._start >= self.interval_s:
                self._start, self._sent = now, 0
            if self._sent >= self.lines:
                self._dropped += 1
                return None
            self._sent += 1
            dropped, self._dropped = self._dropped, 0
            return dropped


class ClientErrorsInBrief(logging.Filter):
    """On BentoML's server logger: a refused client body becomes one short, rate-limited line."""

    def __init__(self, limit: RateLimited | None = None) -> None:
        super().__init__()
        self.limit = limit or RateLimited()

    def filter(self, record: logging.LogRecord) -> bool:
        problem = _client_problem(record)
        if problem is None:
            return True  # not a client's mistake: as BentoML logs it, traceback and all
        dropped = self.limit.admit()
        if dropped is None:
            return False
        route = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        also = f" ({dropped} more since the last such line)" if dropped else ""
        record.msg, record.args = "refused a request to %s: %s%s", (route, problem, also)
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        return True


def _client_problem(record: logging.LogRecord) -> str | None:
    """The first problem of the client's body, when the record is BentoML refusing one."""
    if not record.exc_info or record.exc_info[1] is None:
        return None
    exc = record.exc_info[1]
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_context=False, include_input=False)[:1]
        where = ".".join(str(part) for part in first[0]["loc"]) if first else ""
        message = first[0]["msg"] if first else "invalid"
        return f"{exc.error_count()} problem(s), the first: {where or 'body'}: {message}"[:200]
    from bentoml.exceptions import BentoMLException

    if isinstance(exc, BentoMLException) and int(exc.error_code) < 500:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def install() -> None:
    """Attach the filter to BentoML's server logger in this process (once; called by each service)."""
    logger = logging.getLogger(BENTOML_LOGGER)
    if not any(isinstance(existing, ClientErrorsInBrief) for existing in logger.filters):
        logger.addFilter(ClientErrorsInBrief())
