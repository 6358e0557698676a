"""The page at ``/`` (service/docs_page.py through OpenAPIDocument), without a server; the e2e test
(test_svc_docs_e2e.py) loads it from ``bentoml serve`` and in Chromium."""

from __future__ import annotations

import asyncio
from typing import Any

from service.middleware.docs import OpenAPIDocument
from service.openapi import TITLE


def get(path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"bentoml's"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    asyncio.run(OpenAPIDocument(inner, service=None)(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def test_the_page_at_root_is_titled_by_the_api_and_shows_the_documents_title() -> None:
    status, headers, body = get("/")
    page = body.decode()
    assert status == 200 and headers[b"content-type"].startswith(b"text/html")
    assert f"<title>{TITLE}</title>" in page and TITLE == "Admissions API"
    assert "BentoML Prediction Service" not in page
    assert "index.css" not in page  # BentoML's stylesheet hides the document's title
    assert "googletagmanager" not in page and "https://" not in page  # nothing loaded from elsewhere
    assert "./static_content/swagger-initializer.js" in page  # Swagger UI, reading ./docs.json


def test_other_paths_go_to_bentoml() -> None:
    assert get("/static_content/swagger-ui.css")[2] == b"bentoml's"
