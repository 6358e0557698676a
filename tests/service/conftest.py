"""Fixtures for the service tests: the API service in its default topology, shared by the tests that
do not restart it (tests/support/service.py has the server handling)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pipeline import PipelineRun
from tests.support.service import Server, Service, service_env


@pytest.fixture(scope="session")
def api(pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The API service in its default topology, shared by the tests that do not restart it."""
    folder = tmp_path_factory.mktemp("api")
    env = service_env(pipeline_run, folder)
    server = Server(env, folder / "serve.log").start()
    try:
        yield Service(server.url, env, pipeline_run.model_tag, server)
    finally:
        server.stop()
