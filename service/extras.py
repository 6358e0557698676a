"""What a prediction carries besides its chance: the interval (by default) and the explanation (opt-in).

Both are asked for in the query string, so the JSON (or any other) body keeps the applicant contract:
``?interval=0.8`` (a calibrated level), ``?interval=none``, ``?explain=true``. The interval is computed
from the chance the model service returned, with the numbers of the model that returned it; a model
calibrated per group (issue 22) also needs the applicant's features, which the caller passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.intervals import IntervalTable, UnknownLevelError
from service.errors import InvalidInputError

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


@dataclass(frozen=True)
class Options:
    interval: str | None  # the raw query value; the model's table decides what it means
    explain: bool

    @classmethod
    def of(cls, query: Any) -> Options:
        """From a request's query parameters; a bad ``explain`` value is a 400 naming it."""
        explain = str(query.get("explain", "")).strip().lower()
        if explain not in _TRUE + _FALSE:
            raise InvalidInputError(f"explain must be true or false, got {explain!r}", field="explain")
        return cls(query.get("interval"), explain in _TRUE)


class IntervalTables:
    """Each model's interval table, fetched once from the model service's ``info`` and kept by tag."""

    def __init__(self) -> None:
        self._tables: dict[str, IntervalTable] = {}

    async def get(self, tag: str, info: Callable[[], Awaitable[dict[str, Any]]]) -> IntervalTable:
        table = self._tables.get(tag)
        if table is None:
            answer = await info()
            table = IntervalTable.from_metadata(answer)
            if answer.get("model_tag") == tag:  # a service restarted with another model: ask again next time
                self._tables[tag] = table
        return table

    async def of_model(self, tag: str, info: Callable[[], Awaitable[dict[str, Any]]]) -> IntervalTable | None:
        """The table of exactly that model, or None when the service now serves another one (a job's
        results outlive the model that made them)."""
        table = await self.get(tag, info)
        return table if tag in self._tables else None


def level(table: IntervalTable, options: Options) -> float | None:
    """The level to serve; a level the model was not calibrated for is a 400 naming ``interval``."""
    try:
        return table.level(options.interval)
    except UnknownLevelError as exc:
        raise InvalidInputError(str(exc), field="interval") from None


def single_extras(
    table: IntervalTable, options: Options, chance: float, values: Sequence[float] | None = None
) -> dict[str, Any]:
    """``values``: the applicant's features in contract order (needed when ``table.needs_rows``)."""
    level_ = level(table, options)
    if level_ is None:
        return {"interval": None, "interval_level": None}
    rows = None if values is None or not table.needs_rows else np.asarray([values], dtype=np.float64)
    return {"interval": table.pairs(np.array([chance]), level_, rows)[0].tolist(), "interval_level": level_}


def batch_extras(
    table: IntervalTable, options: Options, chances: np.ndarray, rows: np.ndarray | None = None
) -> dict[str, Any]:
    """``intervals`` is an (n, 2) array (service.wire.to_json writes arrays as JSON lists); ``rows`` the
    (n, 7) features (needed when ``table.needs_rows``)."""
    level_ = level(table, options)
    if level_ is None:
        return {"intervals": None, "interval_level": None}
    return {"intervals": table.pairs(np.asarray(chances, dtype=np.float64), level_, rows), "interval_level": level_}
