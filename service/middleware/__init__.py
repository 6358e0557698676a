"""The API's and model services' ASGI middleware, pure ASGI (no Starlette ``BaseHTTPMiddleware``, whose
extra task and stream per request cost a measurable share of /predict throughput).

- auth.py: bearer tokens on every route that is not public;
- guard.py: body limits, media types, query strings, one upload at a time, bounded error bodies, and
  the model services' check that a call comes from the API;
- fast_paths.py: valid bodies answered without BentoML's per-request machinery;
- memory_budget.py: the request bodies a worker holds at once, bounded by the container's memory;
- docs.py: the OpenAPI document and the Swagger page.
(The single service's own fast path lives with the API's client of it in service/hop.py: both ends of
one wire format.)

The order they run in is set where they are added, in service/api.py and service/models.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError

__all__ = ["USER_KEY", "ASGIApp", "Message", "Receive", "Scope", "Send", "header", "read_body", "replay", "send_error"]

USER_KEY = "admissions.user"  # where auth.py leaves the verified subject for the endpoints (job ownership)


def header(scope: Mapping[str, Any], name: bytes) -> bytes:
    """The first value of header ``name`` (lower case), or b"". A scan of the raw list, not Starlette's
    ``Headers``: building that object costs ~2 us a lookup against ~0.5 us (timeit, 6 headers), and a
    /predict looks up four headers."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


async def send_error(send: Send, exc: ServiceError) -> None:
    """A JSON error response with the error's status and headers, sent straight over ASGI."""
    body = json.dumps(exc.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend((k.lower().encode(), v.encode("latin-1")) for k, v in exc.headers().items())
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client left before sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then whatever the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
