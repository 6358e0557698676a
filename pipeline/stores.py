"""Luigi targets that live in BentoML's stores (models and Bentos, under ``BENTOML_HOME``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import luigi
from bentoml.exceptions import NotFound


class StoreTarget(luigi.Target):
    """An item of a BentoML store; it exists when ``lookup(tag)`` finds it.

    ``lookup`` is ``bentoml.models.get`` for models and ``bentoml.get`` for Bentos, so deleting the
    item from the store makes the task that made it incomplete again.
    """

    def __init__(self, tag: str, lookup: Callable[[str], Any]) -> None:
        self.tag = tag
        self._lookup = lookup

    def __str__(self) -> str:
        return self.tag

    def exists(self) -> bool:
        try:
            self._lookup(self.tag)
        except NotFound:
            return False
        return True
