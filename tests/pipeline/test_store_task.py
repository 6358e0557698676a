"""StoreTask against an in-memory store: when it publishes, and when its manifest is written."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bentoml.exceptions import NotFound

from pipeline import task as task_module
from pipeline.provenance import MANIFEST_NAME
from pipeline.stores import StoreTarget
from pipeline.task import StoreTask
from tests.support.paths import RAW_DATA


class FakeStoreTask(StoreTask):
    """Publishes into a dict; records the clock when the item is stored."""

    store: ClassVar[dict[str, str]] = {}
    published: ClassVar[list[dict[str, Any]]] = []

    def requires(self) -> list[Any]:
        return []

    def output(self) -> StoreTarget:  # type: ignore[override]
        def lookup(tag: str) -> str:
            if tag not in self.store:
                raise NotFound(tag)
            return self.store[tag]

        return StoreTarget("fake:1", lookup)

    def publish(self, manifest: dict[str, Any]) -> None:
        self.published.append(dict(manifest))
        self.store["fake:1"] = task_module._now()  # the moment the item is in the store


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeStoreTask:
    ticks = itertools.count()
    monkeypatch.setattr(task_module, "_now", lambda: f"t{next(ticks):04d}")  # a clock that always moves
    monkeypatch.setattr(FakeStoreTask, "store", {})
    monkeypatch.setattr(FakeStoreTask, "published", [])
    return FakeStoreTask(raw_data=str(RAW_DATA), artefacts_dir=str(tmp_path))


def manifest(task: FakeStoreTask) -> dict[str, Any]:
    return json.loads((task.manifest_dir() / MANIFEST_NAME).read_text())


def test_finished_at_is_taken_after_the_item_is_stored(task: FakeStoreTask) -> None:
    task.run()
    assert len(task.published) == 1
    assert "finished_at" not in task.published[0]  # the stored copy cannot know it yet
    written = manifest(task)
    assert written["started_at"] < task.store["fake:1"] < written["finished_at"]
    assert written["already_in_store"] is False
    assert task.complete()


def test_an_item_already_stored_gets_its_manifest_without_a_second_copy(task: FakeStoreTask) -> None:
    task.store["fake:1"] = "stored by a run killed before it wrote the manifest"
    assert not task.complete()
    task.run()
    assert task.published == []
    assert manifest(task)["already_in_store"] is True
    assert task.complete()


def test_an_item_deleted_from_the_store_is_incomplete_despite_its_manifest(task: FakeStoreTask) -> None:
    task.run()
    task.store.clear()
    assert not task.complete()
    task.run()
    assert len(task.published) == 2
    assert task.complete()
