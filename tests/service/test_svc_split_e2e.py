"""The split topology (as in docker-compose): the API calls the single and batch model services, each a
``bentoml serve`` of its own, by URL. One topology serves the module's tests; none of them changes it."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from service import settings, wire
from tests.support.applicants import applicant, applicants
from tests.support.pipeline import PipelineRun
from tests.support.service import Server, Service, model_predictions, split_topology

pytestmark = pytest.mark.e2e
Split = tuple[Service, Server, Server]  # the API, the single and the batch model service


@pytest.fixture(scope="module")
def split(pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    with split_topology(pipeline_run, tmp_path_factory.mktemp("split")) as servers:
        yield servers


def internal(api: Service) -> dict[str, str]:
    """The API's proof to the model services, derived from the JWT secret."""
    token = settings.internal_token(api.env)
    assert token is not None
    return {"Authorization": f"Bearer {token}"}


def test_model_services_as_separate_processes(pipeline_run: PipelineRun, split: Split) -> None:
    service, single, batch = split
    headers = service.headers()
    rows = applicants(10, seed=8)
    expected = model_predictions(pipeline_run, rows)
    one = requests.post(f"{service.url}/predict", json=rows[0], headers=headers, timeout=30).json()
    assert (one["chance"], one["model_tag"]) == (pytest.approx(expected[0], abs=1e-9), pipeline_run.model_tag)
    many = requests.post(f"{service.url}/predict_batch", json={"applicants": rows}, headers=headers, timeout=30)
    assert many.json()["chances"] == pytest.approx(expected, abs=1e-9)
    model = requests.get(f"{service.url}/model", headers=headers, timeout=30).json()
    assert model["model_tag"] == service.model_tag
    # The calls really went to the separate processes: their own metrics counted them.
    assert 'endpoint="/predict",http_response_code="200"' in requests.get(f"{single.url}/metrics", timeout=30).text
    assert 'endpoint="/predict",http_response_code="200"' in requests.get(f"{batch.url}/metrics", timeout=30).text


def test_model_services_refuse_pickle_bodies(split: Split, tmp_path: Path) -> None:
    """BentoML unpickles request bodies on every service but its "main" one; ours must not."""
    api, single, batch = split
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"rows": Exploit()})
    for server, route in ((batch, "/predict"), (single, "/predict"), (single, "/info")):
        answer = requests.post(
            f"{server.url}{route}",
            data=payload,
            headers={"Content-Type": "application/vnd.bentoml+pickle"},
            timeout=30,
        )
        assert answer.status_code == 415, answer.text
    pickled = {"Content-Type": "application/vnd.bentoml+pickle", **api.headers()}
    assert requests.post(f"{api.url}/predict", data=payload, headers=pickled, timeout=30).status_code == 415
    # Nor does a model service answer anyone but the API (its token is derived from the shared secret).
    block = wire.Blocks(blocks=[wire.raw(np.array([[applicant()[name] for name in applicant()]]))])
    rows = {"Content-Type": "application/json"}
    stranger = requests.post(f"{batch.url}/predict", data=block.model_dump_json(), headers=rows, timeout=30)
    assert stranger.status_code == 403 and "only the API service" in stranger.json()["error"]
    proof = {**internal(api), **rows}
    answer = requests.post(f"{batch.url}/predict", data=block.model_dump_json(), headers=proof, timeout=30)
    assert answer.status_code == 200 and len(wire.unpack(answer.json()[0])) == 1, answer.text
    # ...and the API still reaches both over JSON.
    predicted = requests.post(f"{api.url}/predict", json=applicant(), headers=api.headers(), timeout=30)
    assert predicted.status_code == 200, predicted.text
    assert not marker.exists()


def test_a_model_service_answers_a_malformed_internal_call_with_a_400(split: Split) -> None:
    """A caller holding the internal token sends blocks that are not whole rows, or six features: a 400
    naming the problem (it was a 500 "unexpected error")."""
    api, single, batch = split
    proof = internal(api)
    bad_block = requests.post(f"{batch.url}/predict", json={"blocks": ["AAAAAAAAAAAAAAAA"]}, headers=proof, timeout=30)
    assert bad_block.status_code == 400, bad_block.text
    assert "a block of 12 bytes is not one or more rows of 7 float64 values" in bad_block.text
    six = requests.post(f"{single.url}/predict", json={"features": [1.0] * 6}, headers=proof, timeout=30)
    assert six.status_code == 400, six.text
    assert "at least 7" in six.text
    rows = requests.post(f"{batch.url}/explain", json={"rows": [[1.0, 2.0]]}, headers=proof, timeout=30)
    assert rows.status_code == 400, rows.text
    good = requests.post(
        f"{single.url}/predict", json={"features": [320, 110, 4, 4.5, 4, 9.1, 1]}, headers=proof, timeout=30
    )
    assert good.status_code == 200 and 0 <= good.json()["chance"] <= 1
    for server in (batch, single):
        assert "Traceback" not in server.log.read_text(errors="replace")
