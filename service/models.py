"""The two model services ("runners") that the API service calls.

Both load the model named by the Bento argument ``model_tag`` or ``ADMISSIONS_MODEL_TAG`` (read when
this module is imported, so a Bento built with either carries that exact model; see
settings.model_tag). ``SingleModel`` answers one applicant at a time with no batching wait;
``BatchModel`` merges concurrent calls into batches (adaptive batching). Neither is exposed to
clients: they have no authentication of their own and must listen only where the API can reach them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import attrs
import bentoml
import numpy as np
from _bentoml_sdk.service.dependency import Dependency
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml.validators import DType, Shape
from pydantic import Field

from core import aliases
from core.artefact import CARD_FILE
from core.contract import FEATURE_NAMES
from service import hop, patches, quiet, settings, wire
from service.explain import Explainer
from service.lifecycle import die_with_parent, mark_server
from service.middleware.guard import BodyLimit, FromTheAPIOnly, JsonBodiesOnly
from service.predictor import Predictor

MODEL_TAG = settings.served_model_tag()  # the promoted model unless one is named


def before_workers() -> None:
    """Every service's deployment check, in the serving process before any worker starts: mark it as
    the workers' parent (service/lifecycle.py), and refuse to start, with one sentence and exit 2, on a
    BentoML the patches were not written for (service/patches.py). (The model store is checked just
    before, when BentoML resolves the services' models: :class:`LocalModel`.)"""
    mark_server()
    try:  # a timer per request stalled workers for GC; session refreshes dropped calls
        patches.apply()
    except patches.PatchMismatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def in_each_worker() -> None:
    """What every worker does first: die with its server, keep client mistakes to one log line, and
    apply the patches (checked by :func:`before_workers`) in its own process."""
    die_with_parent()
    quiet.install()
    patches.apply()


@attrs.frozen
class LocalModel(bentoml.models.BentoModel):
    """A model of the local store. BentoML resolves the services' models when ``bentoml serve`` starts,
    before any deployment hook; a model missing locally it would try to download from BentoCloud and
    fail with "No cloud context default found". This says what to do instead: one sentence, exit 2.
    Only resolving checks the store, so importing the services (``make openapi``) needs no model."""

    def resolve(self, base_path: Any = None) -> Any:
        if self.stored is None:
            home = BentoMLContainer.bentoml_home.get()
            print(
                f"error: no model {self.tag} is registered in {home} (BENTOML_HOME): run `make pipeline` first, "
                "or set ADMISSIONS_MODEL_TAG to one that `bentoml models list` shows",
                file=sys.stderr,
            )
            raise SystemExit(2)
        return super().resolve(base_path)


def local_model(tag: str) -> LocalModel:
    return LocalModel(tag)  # type: ignore[call-arg]  # attrs fields mypy cannot see


assert len(FEATURE_NAMES) == wire.ROW_WIDTH
# What the API sends: the seven features in contract order. Declared in the signatures, so BentoML's
# input validation answers a malformed call with a 400 naming the problem, not a 500 from the model.
Features = Annotated[list[float], Field(min_length=len(FEATURE_NAMES), max_length=len(FEATURE_NAMES))]
Rows = Annotated[np.ndarray, Shape((-1, len(FEATURE_NAMES))), DType("float64")]
# Adaptive batching counts blocks (service/wire.py), one per call: a /predict_batch request or a job's chunk.
BATCH_MAX_BLOCKS = 16
# Long enough that a full batch never misses it on this 2-core machine (a miss is a 503).
BATCH_MAX_LATENCY_MS = 5_000
_QUIET = {"access": {"enabled": False}}  # per-request access logs cost ~10% throughput
# Spans are only exported when tracing is configured, yet creating them cost ~10% of a request.
UNTRACED = {"excluded_urls": ["/predict$", "/predict_batch$", "/livez$", "/readyz$", "/healthz$", "/metrics$"]}


T = TypeVar("T")


class InProcess(Generic[T]):
    """What ``bentoml.depends(service)`` resolves to when nothing maps the service elsewhere: an
    instance of the same service class, in this process, made on first use.

    Used for ``SingleModel`` when ``SINGLE_MODEL_URL`` is unset. ``bentoml serve`` would otherwise start
    it as a child process, and the extra HTTP hop (client, server stack, pickling) cost more than the
    ~0.2 ms prediction itself: with the hop /predict did ~150 req/s here, in-process ~3x that.
    """

    def __init__(self, on: Any) -> None:
        self.on = on
        self._instance: Any = None

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return self
        if self._instance is None:
            self._instance = self.on()
        return self._instance


def json_depends(on: Any, url: str | None) -> Any:
    """``bentoml.depends(on, url=url)``, but always over JSON: see :class:`JsonDependency`."""
    return JsonDependency(on=on, url=url)  # type: ignore[call-arg]  # attrs fields mypy cannot see


@attrs.define
class JsonDependency(Dependency[Any]):
    """``bentoml.depends`` that talks JSON to a model service in every topology.

    BentoML calls a dependency it started itself (``bentoml serve`` of the API alone) with pickle
    bodies, and a service unpickles what it is sent unless it is the "main" one. The model services
    refuse pickle (service/middleware/guard.py), so the API must not send it: giving the dependency its URL from
    BentoML's own mapping takes BentoML's URL path, which uses JSON.
    """

    def get(self, *args: Any, **kwargs: Any) -> Any:
        state: Any = self  # attrs slots that mypy cannot see
        if not state.url and state.on is not None:
            state.url = BentoMLContainer.remote_runner_mapping.get().get(state.on.name)
        return super().get(*args, **kwargs)


def model_info(bento_model: Any, explainer: Explainer | None = None) -> dict[str, Any]:
    """Tag, labels and store metadata: what ``GET /model`` shows (promotion is added per call: it changes)."""
    metadata = dict(bento_model.info.metadata)
    return {
        "model_tag": str(bento_model.tag),
        "created_at": bento_model.info.creation_time.isoformat(),
        "labels": dict(bento_model.info.labels),
        "candidate": metadata.get("candidate"),
        "selection_reason": metadata.get("selection_reason"),
        "metrics": metadata.get("metrics"),
        "hyperparameters": metadata.get("hyperparameters"),
        "manifest": metadata.get("manifest"),
        "intervals": metadata.get("intervals"),
        "explanations": explainer.method if explainer is not None else None,
    }


def info_now(bento_model: Any, cached: dict[str, Any]) -> dict[str, Any]:
    """The cached info plus whether the model is the promoted one (read each time: promotion moves on)."""
    return {**cached, "promotion": aliases.status(str(bento_model.tag), Path(bento_model.path))}


def read_card(bento_model: Any) -> str | None:
    """The model card the pipeline stored in the model's folder (pipeline/card.py), if it has one."""
    path = Path(bento_model.path) / CARD_FILE
    return path.read_text() if path.is_file() else None


@bentoml.service(name="admissions_single", workers=1, logging=_QUIET, tracing=UNTRACED, traffic={"timeout": 30})
class SingleModel:
    """Latency first: one applicant per call, predicted at once."""

    bento_model = local_model(MODEL_TAG)

    @bentoml.on_deployment
    def check() -> None:
        before_workers()

    def __init__(self) -> None:
        in_each_worker()
        self.predictor = Predictor.from_store(self.bento_model)
        self.explainer = Explainer(self.predictor.original, self.predictor.affine, self.bento_model.info.metadata)
        self.info_cache = model_info(self.bento_model, self.explainer)

    @bentoml.api
    async def predict(self, features: Features) -> dict[str, Any]:
        """Seven features in contract order -> ``{"chance", "model_tag"}``; ~0.2 ms, so no thread hop."""
        return {"chance": float(self.predictor.predict(np.asarray(features))[0]), "model_tag": self.predictor.tag}

    @bentoml.api
    async def explain(self, features: Features) -> dict[str, Any]:
        """The same chance as ``predict`` (same code path) and its feature contributions (opt-in, slower:
        500 trees take ~20 ms, so off the event loop, which this service may share with the API)."""
        return await asyncio.to_thread(self._explain, features)

    def _explain(self, features: list[float]) -> dict[str, Any]:
        rows = np.asarray(features, dtype=np.float64).reshape(1, -1)
        chances = self.predictor.predict(rows)
        explanation = self.explainer.explain(rows, chances)[0] if self.explainer.method else None
        return {"chance": float(chances[0]), "model_tag": self.predictor.tag, "explanation": explanation}

    @bentoml.api
    async def info(self) -> dict[str, Any]:
        return info_now(self.bento_model, self.info_cache)

    @bentoml.api
    async def card(self) -> str:
        """The model card (Markdown) with the aliases as they are now, or an empty string for a model
        registered without one."""
        card = read_card(self.bento_model)
        if card is None:
            return ""
        state = aliases.status(str(self.bento_model.tag), Path(self.bento_model.path))
        return card.rstrip() + "\n" + aliases.card_section(state)


@bentoml.service(name="admissions_batch", workers=1, logging=_QUIET, tracing=UNTRACED, traffic={"timeout": 60})
class BatchModel:
    """Throughput first: concurrent calls are merged into batches of up to ``BATCH_MAX_BLOCKS`` blocks of rows."""

    bento_model = local_model(MODEL_TAG)

    @bentoml.on_deployment
    def check() -> None:
        before_workers()

    def __init__(self) -> None:
        in_each_worker()
        self.predictor = Predictor.from_store(self.bento_model)
        self.explainer = Explainer(self.predictor.original, self.predictor.affine, self.bento_model.info.metadata)
        self.info_cache = model_info(self.bento_model, self.explainer)

    @bentoml.api(
        batchable=True, max_batch_size=BATCH_MAX_BLOCKS, max_latency_ms=BATCH_MAX_LATENCY_MS, input_spec=wire.Blocks
    )
    def predict(self, blocks: list[bytes]) -> list[str]:
        """Blocks of (n, 7) features -> blocks of (n,) chances, one per block (service/wire.py). Adaptive
        batching merges concurrent calls' blocks into one prediction. Sync on purpose: BentoML runs it
        in a thread, off the event loop."""
        rows = [wire.from_raw(block, len(FEATURE_NAMES)) for block in blocks]
        chances = self.predictor.predict(np.concatenate(rows) if len(rows) > 1 else rows[0])
        ends = np.cumsum([len(part) for part in rows])[:-1]
        return [wire.pack(part) for part in np.split(chances, ends)]

    @bentoml.api
    def explain(self, rows: Rows) -> dict[str, Any]:
        """Not batched (explanations are opt-in): the chances, by the same code as ``predict``, and contributions."""
        chances = self.predictor.predict(rows)
        explanations = self.explainer.explain(rows, chances) if self.explainer.method else None
        return {"chances": chances.tolist(), "model_tag": self.predictor.tag, "explanations": explanations}

    @bentoml.api
    async def info(self) -> dict[str, Any]:
        return info_now(self.bento_model, self.info_cache)


# Model services take JSON only (never pickle), bounded bodies (a 100,000-row block is ~7.5 MB), and
# calls from the API service only.
def _running_instance() -> Any:
    """This process's served model service instance (None before it exists), for the fast path."""
    try:
        return bentoml.get_current_service()
    except bentoml.exceptions.BentoMLException:
        return None


for _model_service in (SingleModel, BatchModel):
    _guarded: Any = _model_service  # the decorator made it a bentoml Service; mypy still sees the class
    _guarded.add_asgi_middleware(BodyLimit, limits={}, default=64 * 1024 * 1024)
    _guarded.add_asgi_middleware(JsonBodiesOnly)  # before the caller check: pickle is refused to anyone
    _guarded.add_asgi_middleware(FromTheAPIOnly, token=settings.internal_token)
# The innermost: a well-formed /predict from the API is answered without BentoML's dispatch (service/hop.py).
_SINGLE: Any = SingleModel
_SINGLE.add_asgi_middleware(hop.PredictFastPath, model=_running_instance)
