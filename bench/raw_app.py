"""The yardstick for /predict (issue 12): the same work in a bare Starlette app on uvicorn with
httptools and uvloop, 2 worker processes like the API service: the bearer token checked (the same
settings and code), the body validated against the same contract, the same model's chance, and its
interval. What it leaves out is what the service adds: BentoML's request handling, our middleware
(body limits, media types, revocation, bounded errors) and the model-service call.

    JWT_SECRET_KEY=... python bench/raw_app.py --port 3398     (bench/service.sh starts it)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orjson
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.contract import FEATURE_NAMES
from core.intervals import IntervalTable
from service import auth, settings
from service.errors import AuthenticationError
from service.predictor import Predictor
from service.schemas import Applicant


def load() -> tuple[auth.TokenPolicy, Predictor, IntervalTable]:
    import bentoml

    loaded = settings.load()
    policy = auth.TokenPolicy(loaded.jwt_secret, loaded.issuer, loaded.audience, loaded.token_lifetime_s)
    model = bentoml.models.get(settings.served_model_tag())
    return policy, Predictor.from_store(model), IntervalTable.from_metadata(model.info.metadata)


POLICY, PREDICTOR, INTERVALS = load()


async def predict(request: Request) -> Response:
    try:
        auth.verify(POLICY, auth.bearer_token(request.headers.get("authorization")))
    except AuthenticationError as exc:
        return Response(orjson.dumps(exc.body()), status_code=401, media_type="application/json")
    try:
        applicant = Applicant.model_validate_json(await request.body())
    except ValidationError as exc:
        return Response(exc.json(), status_code=400, media_type="application/json")
    row = np.array([[getattr(applicant, name) for name in FEATURE_NAMES]], dtype=np.float64)
    chance = float(PREDICTOR.predict(row)[0])
    level = INTERVALS.default_level
    interval = INTERVALS.pairs(np.array([chance]), level, row)[0].tolist() if level is not None else None
    body = {"chance": chance, "model_tag": PREDICTOR.tag, "interval": interval, "interval_level": level}
    return Response(orjson.dumps(body), media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3398)
    parser.add_argument("--workers", type=int, default=settings.api_workers())
    args = parser.parse_args()
    uvicorn.run(
        "raw_app:app",
        app_dir=str(Path(__file__).resolve().parent),
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
