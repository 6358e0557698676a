"""``GET /docs.json`` and ``GET /``: the API's own OpenAPI document (service/openapi.py) and Swagger page."""

from __future__ import annotations

import json
from typing import Any

from service.docs_page import index_html
from service.middleware import Receive, Scope, Send
from service.openapi import TITLE, document

_INDEX_HTML = index_html(TITLE)


class OpenAPIDocument:
    """Answers ``GET /docs.json`` with :func:`document` of the service's spec (made once per process), and
    ``GET /`` with Swagger UI under the API's title (service/docs_page.py) instead of BentoML's page."""

    def __init__(self, app: Any, service: Any) -> None:
        self.app = app
        self.service = service
        self._body: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in ("/", "/docs.json"):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/":
            await _answer(send, b"text/html; charset=utf-8", _INDEX_HTML)
            return
        if self._body is None:
            self._body = json.dumps(document(self.service.openapi_spec.asdict())).encode()
        await _answer(send, b"application/json", self._body)


async def _answer(send: Send, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
