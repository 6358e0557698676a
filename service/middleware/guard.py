"""ASGI middleware that bounds what one request can cost, on every service (API and model services).

- :class:`JsonBodiesOnly`: a POST body must be JSON (415 otherwise). BentoML picks its parser from the
  Content-Type, so this also refuses ``application/vnd.bentoml+pickle``, which BentoML unpickles on every
  service but the one it serves as "main" (upstream PR #5610): a model service must never run code a
  local user or another container sends it. The API calls the model services with JSON (models.py).
- :class:`BodyLimit`: a body over its route's limit gets 413 before it is read whole: at once from its
  Content-Length, or as soon as a chunked body crosses the limit.
- :class:`NoQueryParameters`: a query parameter a route would ignore is refused (400), not ignored.
- :class:`OneUploadAtATime`: a worker parses one job upload at a time (a JSON job costs ~1.2 KB of
  memory per row while it is parsed; bench/job_memory.py), so the job size limit bounds its memory.
- :class:`FromTheAPIOnly`: a model service answers POSTs only when they carry the API's internal token
  (settings.internal_token): no other local user, container or pod can use it, whatever the network.
- :class:`BoundedErrors`: BentoML answers a validation error with every problem found, 10-13x the size
  of the request; this keeps the first few and a count, and names the request, not BentoML's classes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from service.errors import ForbiddenError, InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from service.middleware import Message, Receive, Scope, Send, header, send_error

logger = logging.getLogger("admissions.guard")
SHOWN_PROBLEMS = 10
MAX_ERROR_BYTES = 64 * 1024  # larger error bodies are not parsed again: they are replaced


class JsonBodiesOnly:
    """Answers 415 to a POST whose Content-Type is not JSON (no Content-Type is taken as JSON), or
    text/csv on ``csv_paths``."""

    def __init__(self, app: Any, csv_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.csv_paths = csv_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            media_type = media_type_of(scope)
            csv_here = scope["path"] in self.csv_paths
            if media_type not in (b"", b"application/json") and (media_type != b"text/csv" or not csv_here):
                also = " or text/csv" if csv_here else ""
                await send_error(send, UnsupportedMediaTypeError(f"send the body as application/json{also}"))
                return
        await self.app(scope, receive, send)


def media_type_of(scope: Mapping[str, Any]) -> bytes:
    """The request's media type, lower case, without parameters (b"" when there is no Content-Type)."""
    return header(scope, b"content-type").split(b";", 1)[0].strip().lower()


class BodyLimit:
    """413 for a body longer than ``limits[path]`` (or ``default``) bytes, before the app reads it;
    a text/csv body's limit is ``csv_limits[path]`` (CSV rows are smaller, so more of them fit)."""

    def __init__(
        self, app: Any, limits: Mapping[str, int], default: int, csv_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = default
        self.csv_limits = csv_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        if scope["path"] in self.csv_limits and media_type_of(scope) == b"text/csv":
            limit = self.csv_limits[scope["path"]]
        declared = content_length(scope)
        if declared is not None:  # the server never reads past a declared length
            if declared > limit:
                # Answered before the body is read: uvicorn drops the rest of it and keeps the
                # connection, so a client that sends its whole body before reading sees the 413.
                await send_error(send, _too_large(scope["path"], limit))
                return
            await self.app(scope, receive, send)
            return
        await self._chunked(scope, receive, send, limit)

    async def _chunked(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Count a chunked body as the app reads it; past the limit answer 413 and tell the app the
        client left, so it stops reading, and drop whatever it answers to that."""
        seen = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await send_error(send, _too_large(scope["path"], limit))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class FromTheAPIOnly:
    """403 for a POST without ``Authorization: Bearer <internal token>``; health and metrics stay open."""

    def __init__(self, app: Any, token: Callable[[], str | None]) -> None:
        self.app = app
        self.token = token
        self._expected: bytes | None = None
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self._expected is None:
            token = self.token()
            if token is None:  # no shared secret here: only the network protects this service
                if not self._warned:
                    logger.warning("JWT_SECRET_KEY is not set: this model service answers any caller")
                    self._warned = True
                await self.app(scope, receive, send)
                return
            self._expected = f"Bearer {token}".encode()
        sent = header(scope, b"authorization")
        if not hmac.compare_digest(sent, self._expected):
            await send_error(send, ForbiddenError("only the API service may call the model services"))
            return
        await self.app(scope, receive, send)


class NoQueryParameters:
    """``POST /jobs`` takes no query parameters: ``?explain=true`` or ``?interval=`` were silently
    ignored there (a job has no explanations; its intervals are asked for with its results), so a
    client believed it had asked for something. 400, naming the parameter, before the body is read."""

    def __init__(self, app: Any, paths: Mapping[str, str]) -> None:
        self.app, self.paths = app, paths  # path -> what to do instead

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instead = self.paths.get(scope.get("path", "")) if scope["type"] == "http" else None
        if instead is not None and scope["method"] == "POST" and scope.get("query_string"):
            names = sorted({name for name, _ in parse_qsl(scope["query_string"].decode("latin-1"), True)})
            shown = ", ".join(repr(name[:40]) for name in names[:5]) or "(unnamed)"
            await send_error(
                send, InvalidInputError(f"{scope['path']} takes no query parameters, got {shown}: {instead}")
            )
            return
        await self.app(scope, receive, send)


class OneUploadAtATime:
    """Requests to ``paths`` wait for each other in this worker before their bodies are read (the
    waiting bodies stay in the kernel's socket buffers, applying back-pressure to their clients)."""

    def __init__(self, app: Any, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths
        self._gate: asyncio.Semaphore | None = None  # made in the serving event loop, on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self._gate is None:
            self._gate = asyncio.Semaphore(1)
        async with self._gate:
            await self.app(scope, receive, send)


class BoundedErrors:
    """Rewrites BentoML's 400 validation answers: the first problems, their count, bounded in size."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        size = 0

        async def rewriting_send(message: dict[str, Any]) -> None:
            nonlocal start, size
            if message["type"] == "http.response.start":
                if message["status"] != 400:
                    await send(message)
                    return
                start = message  # held back until the body is known
                return
            if start is None:
                await send(message)
                return
            body = message.get("body", b"")
            size += len(body)
            if size <= MAX_ERROR_BYTES:
                chunks.append(body)
            if message.get("more_body", False):
                return
            payload = bounded(scope["path"], b"".join(chunks) if size <= MAX_ERROR_BYTES else None)
            headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-type")]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

        await self.app(scope, receive, rewriting_send)


def bounded(path: str, body: bytes | None) -> bytes:
    """The error body to send: ours untouched; BentoML's validation report cut to its first problems."""
    try:
        data = json.loads(body) if body is not None else None
    except ValueError:
        data = None
    if isinstance(data, dict) and not isinstance(data.get("detail"), list):
        return body or b""  # one of ours: already short
    problems = data["detail"] if isinstance(data, dict) else []
    return json.dumps(invalid_body(path, problems, known=body is not None).body()).encode()


def invalid_body(path: str, problems: list[Any], known: bool = True) -> InvalidInputError:
    """A 400 naming the first problems of a body (pydantic's error dicts) and their count; ``known``
    False: the problems were too many to read."""
    count = len(problems) if known else None
    shown = [_problem(item) for item in problems[:SHOWN_PROBLEMS]]
    summary = f"{count} problem(s)" if count is not None else "too many problems to list"
    listed = f"; the first {len(shown)} are listed" if count and count > len(shown) else ""
    return InvalidInputError(f"invalid request body for {path}: {summary}{listed}", problems=shown, problem_count=count)


def _problem(item: Any) -> str:
    """'applicants[3].gre_score: Input should be less than or equal to 340'."""
    if not isinstance(item, dict):
        return str(item)[:200]
    location = ""
    for part in item.get("loc", []):
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    return f"{location or 'body'}: {str(item.get('msg', 'invalid'))[:200]}"


def content_length(scope: Scope) -> int | None:
    try:
        return int(header(scope, b"content-length"))
    except ValueError:  # absent (b"") or not a number
        return None


def _too_large(path: str, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"request body for {path} is larger than its limit of {limit:,} bytes", limit=limit)
