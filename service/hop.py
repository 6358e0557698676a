"""The /predict hop between the API and a separate single-model service (``SINGLE_MODEL_URL``), both ends.

In the compose topology every ``/predict`` is one call from the API container to the ``single``
container. Through BentoML's own client and endpoint that call cost more CPU than everything else the
request does (py-spy on both containers, docs/benchmarks.md "The split topology"): on the API side a
pydantic model built and dumped per call, OpenTelemetry header injection, a streamed (chunked) body,
and an aiohttp session replaced every 100 calls (new TCP connections each time); on the model side
BentoML's dispatch, whose answer path rebuilt a JSON schema on every call. Both ends here speak the
same JSON as BentoML's endpoint (``{"features": [7 numbers]}`` -> ``{"chance", "model_tag"}``), so
either end works with BentoML's other end:

- :class:`SingleHop` (API side): one long-lived aiohttp session per worker, a fixed-length JSON body
  written by orjson, the answer read by orjson. A call that finds its kept-alive connection closed by
  the server (the race between uvicorn closing an idle connection and a new request on it) is sent
  once more: a prediction has no side effect. Sessions are replaced every ``max_age_s``, the old one
  closed only after the longest call on it has ended, so replicas added by ``--scale`` get new
  connections (Docker's DNS round robin).
- :class:`PredictFastPath` (model side, innermost middleware of ``SingleModel``): answers a well-formed
  ``POST /predict`` itself; anything else goes on to BentoML's endpoint, which validates it and names
  the problem. The guards before it (body limit, JSON only, the API's token) apply to both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import orjson

from core.contract import FEATURE_NAMES
from service.middleware import Receive, Scope, Send, read_body, replay

WIDTH = len(FEATURE_NAMES)
# Below uvicorn's keep-alive timeout (5 s): the client drops an idle connection before the server does.
KEEPALIVE_S = 4.0
SESSION_MAX_AGE_S = 60.0


class HopError(Exception):
    """The single-model service answered something other than a prediction."""


class SingleHop:
    """``predict(features=[7 floats])`` on a single-model service at ``url``, as BentoML's client would."""

    def __init__(
        self, url: str, token: str | None, timeout_s: float = 30.0, max_age_s: float = SESSION_MAX_AGE_S
    ) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_age_s = max_age_s
        self._session: aiohttp.ClientSession | None = None
        self._born = 0.0

    def _current(self) -> aiohttp.ClientSession:
        now = time.monotonic()
        if self._session is None or now - self._born > self.max_age_s:
            old, self._session, self._born = self._session, self._new_session(), now
            if old is not None:  # calls may still run on it: close it once the longest of them has ended
                grace = (self.timeout.total or 30.0) + 1.0
                asyncio.get_running_loop().call_later(grace, lambda: asyncio.ensure_future(old.close()))
        return self._session

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S, use_dns_cache=False)
        return aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, headers=self.headers, skip_auto_headers=("User-Agent",)
        )

    async def predict(self, features: list[float]) -> dict[str, Any]:
        body = orjson.dumps({"features": features})
        try:
            return await self._post(body)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            return await self._post(body)  # once: a kept-alive connection the server had just closed

    async def _post(self, body: bytes) -> dict[str, Any]:
        async with self._current().post(self.url, data=body) as answer:
            content = await answer.read()
            if answer.status != 200:
                raise HopError(f"{answer.status}: {content[:200].decode('utf-8', 'replace')}")
        result: dict[str, Any] = orjson.loads(content)
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class PredictFastPath:
    """Answers ``POST /predict`` on the single-model service when the body is ``{"features": [7 numbers]}``."""

    def __init__(self, app: Any, model: Callable[[], Any | None]) -> None:
        self.app = app
        self.model = model  # the SingleModel instance of this worker, once made (its predictor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.model() if scope["type"] == "http" and scope["method"] == "POST" else None
        if model is None or scope["path"] != "/predict":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return  # the caller left
        values = features_of(body)
        if values is None:  # BentoML's endpoint validates it and names the problem (400)
            await self.app(scope, replay(body, receive), send)
            return
        chance = float(model.predictor.predict(np.asarray(values, dtype=np.float64))[0])
        answer = orjson.dumps({"chance": chance, "model_tag": model.predictor.tag})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def features_of(body: bytes) -> list[float] | None:
    """The seven numbers of ``{"features": [...]}``, or None for any other body (BentoML's endpoint
    then answers it as before). Numbers only: what the endpoint's ``list[float]`` would coerce from
    other types (strings of digits) is left to it."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or len(data) != 1:
        return None
    values = data.get("features")
    if not isinstance(values, list) or len(values) != WIDTH:
        return None
    if not all(type(value) is float or type(value) is int for value in values):
        return None
    return values
