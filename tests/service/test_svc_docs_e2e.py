"""The API as its users meet it first: the OpenAPI document, Swagger UI in a real browser, and BentoML's
own client (issue 9 item 3). The server runs with the default request limits, as documented."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.applicants import applicant
from tests.support.paths import ROOT
from tests.support.pipeline import PipelineRun
from tests.support.service import PASSWORD, Server, Service, service_env

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = ROOT / "docs" / "swagger.png"


@pytest.fixture(scope="module")
def documented(pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("docs")
    env = service_env(pipeline_run, folder, ADMISSIONS_MAX_BATCH_SIZE="10000", ADMISSIONS_MAX_JOB_SIZE="100000")
    server = Server(env, folder / "serve.log").start()
    try:
        yield Service(server.url, env, pipeline_run.model_tag, server)
    finally:
        server.stop()


def spec(service: Service) -> dict[str, Any]:
    answer = requests.get(f"{service.url}/docs.json", timeout=30)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def test_the_checked_in_document_is_what_the_service_serves(documented: Service) -> None:
    checked_in = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert spec(documented) == checked_in, "docs/openapi.yaml is stale: run `make openapi`"


def test_the_document_is_the_projects_and_says_how_to_authenticate(documented: Service) -> None:
    doc = spec(documented)
    assert doc["info"]["title"] == "Admissions API" and doc["info"]["version"] != "None"
    assert "BentoML" not in doc["info"]["description"] and "Descriptor" not in str(doc)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    expected = {
        ("post", "/login"): {"200", "400", "401", "413", "415", "429", "503"},
        ("post", "/predict"): {"200", "400", "401", "413", "415", "503"},
        ("post", "/predict_batch"): {"200", "400", "401", "413", "415", "503"},
        ("post", "/jobs"): {"202", "400", "401", "413", "415", "429", "503"},
        ("get", "/jobs/status"): {"200", "400", "401", "404", "503"},
        ("get", "/jobs/results"): {"200", "400", "401", "404", "409", "503"},
        ("post", "/jobs/retry"): {"202", "400", "401", "404", "409", "503"},
        ("get", "/model"): {"200", "401", "503"},
        ("get", "/model/card"): {"200", "401", "404", "503"},
    }
    for (method, path), statuses in expected.items():
        operation = doc["paths"][path][method]
        assert set(operation["responses"]) == statuses, path
        assert (operation.get("security") is None) == (path == "/login"), path
        if method == "post" and path != "/jobs/retry":
            assert operation["requestBody"]["content"]["application/json"]["example"], path
    for path in ("/predict", "/predict_batch"):
        assert {p["name"] for p in doc["paths"][path]["post"]["parameters"]} == {"interval", "explain"}


def test_the_page_at_root_is_the_apis_not_bentomls(documented: Service) -> None:
    page = requests.get(f"{documented.url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>Admissions API</title>" in page.text and "BentoML Prediction Service" not in page.text
    assert "index.css" not in page.text  # BentoML's stylesheet hides the document's title
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"):  # served by BentoML
        assert requests.get(f"{documented.url}/static_content/{asset}", timeout=30).status_code == 200, asset


def test_documented_statuses_are_the_real_ones(documented: Service) -> None:
    """What the document promises for /jobs and the job routes is what the server answers."""
    headers = documented.headers()
    submitted = requests.post(f"{documented.url}/jobs", json={"applicants": [applicant()]}, headers=headers, timeout=30)
    assert submitted.status_code == 202
    unknown = requests.get(f"{documented.url}/jobs/status?job_id=nope", headers=headers, timeout=30)
    assert unknown.status_code == 404
    retry = requests.post(
        f"{documented.url}/jobs/retry?job_id={submitted.json()['job_id']}", headers=headers, timeout=30
    )
    assert retry.status_code == 409  # not failed


def test_bentomls_client_reaches_every_route_with_a_token(documented: Service) -> None:
    """The README's client code, run: BentoML's SyncHTTPClient for the APIs, its httpx client for the GETs."""
    import bentoml

    with bentoml.SyncHTTPClient(documented.url) as anonymous:
        token = anonymous.login(username="alice", password=PASSWORD)["access_token"]
    with bentoml.SyncHTTPClient(documented.url, token=token) as client:
        chance = client.predict(**applicant())["chance"]
        assert 0 <= chance <= 1
        assert client.predict_batch(applicants=[applicant()])["chances"] == pytest.approx([chance], abs=1e-12)
        job = client.submit_job(applicants=[applicant(), applicant()])
        status = client.client.get("/jobs/status", params={"job_id": job["job_id"]}).json()
        assert status["job_id"] == job["job_id"]
        assert client.client.get("/model").json()["model_tag"] == documented.model_tag


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None and os.environ.get("ADMISSIONS_REQUIRE_BROWSER") != "1",
                    reason="Chromium is not installed (Debian: apt-get install chromium)")  # fmt: skip
def test_swagger_ui_in_chromium_logs_in_with_authorize_and_predicts(documented: Service, tmp_path: Path) -> None:
    """Headless Chromium: Authorize with a token from /login, then "Try it out" on POST /predict."""
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM is not None, "Chromium is required here (ADMISSIONS_REQUIRE_BROWSER=1)"
    token = documented.token()
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{documented.url}/", wait_until="networkidle")
            expect(page).to_have_title("Admissions API")  # the browser tab
            expect(page.locator(".info .title")).to_contain_text("Admissions API")
            expect(page.locator(".info .title")).to_be_visible()  # BentoML's page hid it (visibility: hidden)
            page.get_by_role("button", name="Authorize").first.click()
            page.locator(".auth-container input").first.fill(token)
            page.locator(".modal-ux button.authorize").click()
            page.locator(".modal-ux button.btn-done").click()
            operation = page.locator("#operations-Predictions-admissions_api__predict")
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            operation.get_by_role("button", name="Execute").click()
            status = operation.locator(".live-responses-table tbody .response-col_status").first
            expect(status).to_have_text("200", timeout=30_000)
            expect(operation.locator(".live-responses-table tbody .response-col_description").first).to_contain_text(
                '"chance"'
            )
            shot = tmp_path / "swagger.png"
            top = operation.bounding_box()
            bottom = operation.locator(".live-responses-table").first.bounding_box()
            assert top is not None and bottom is not None
            clip = {
                "x": top["x"],
                "y": top["y"],
                "width": top["width"],
                "height": bottom["y"] + bottom["height"] - top["y"],
            }
            page.screenshot(path=str(shot), clip=clip, full_page=True)
            if os.environ.get("UPDATE_SCREENSHOTS") == "1":
                shutil.copy(shot, SCREENSHOT)
        finally:
            browser.close()
    assert SCREENSHOT.is_file(), "docs/swagger.png is missing: run this test with UPDATE_SCREENSHOTS=1"
