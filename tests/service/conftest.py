"""Fixtures for the service tests: the API service in its default topology, shared by the tests that
do not restart it (see svc_helpers for the server handling)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import PipelineRun
from tests.postgres import postgres  # noqa: F401  (a fixture)
from tests.service.svc_helpers import Server, Service, service_env


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
