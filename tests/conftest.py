"""Shared fixtures: a model registered by the real pipeline into a temporary BENTOML_HOME.

Every test session (each pytest-xdist worker is one) gets its own BENTOML_HOME (set before BentoML is
imported anywhere), so tests never touch the user's model store. The helpers are in tests/support/;
the names below stay importable from here for the container suite.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

try:  # pytest >= 9.2 builds a node's id from item._id (see pytest_collection_modifyitems)
    from _pytest.nodeid import NodeId
except ImportError:  # pragma: no cover - older pytest reads item._nodeid, which xdist sets itself
    NodeId = None  # type: ignore[assignment,misc]

from tests.support.paths import RAW_DATA, ROOT
from tests.support.pipeline import PipelineRun, registered_tag, run_pipeline, session_run
from tests.support.postgres import postgres

__all__ = ["RAW_DATA", "ROOT", "PipelineRun", "postgres", "registered_tag", "run_pipeline"]

_SESSION_HOME = tempfile.mkdtemp(prefix="bentoml-home-")
os.environ["BENTOML_HOME"] = _SESSION_HOME
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's BENTOML_HOME goes with the session (each was left in /tmp: ~2 MB a session, and
    a run of the suite is four or more sessions)."""
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark what needs a real PostgreSQL (``-m "not postgres"`` leaves it out), and keep the tests of a
    module-scoped fixture (a server, a Bento, a store of several pipeline runs) on one pytest-xdist
    worker (``--dist loadgroup``), so that the fixture is made once, not once per worker."""
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        info = getattr(item, "_fixtureinfo", None)
        definitions = info.name2fixturedefs.values() if info is not None else ()
        if any(defs and defs[-1].scope == "module" for defs in definitions):
            group = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
            if NodeId is not None and getattr(config.option, "loadgroup", False) and isinstance(item._id, NodeId):
                # xdist 3.8 groups by a suffix on item._nodeid, which pytest 9.2 no longer reads (its
                # nodeid comes from item._id): without this, --dist loadgroup silently ignores groups.
                item._id = NodeId.parse(f"{item.nodeid}@{group}")
    if hasattr(config, "workerinput"):  # an xdist worker: the slow tests first, the quick ones fill the end
        items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """The pipeline run once for the whole test run, on the vendored data, through RegisterModel.

    This session's copy registers into the session's BENTOML_HOME, so tests can also load the model
    in-process (tests/support/pipeline.py).
    """
    return session_run(tmp_path_factory, Path(_SESSION_HOME))
