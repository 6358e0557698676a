"""The compose stack from `make run-docker`: the API through its published port, the isolation and
hardening of every container, and Prometheus scraping all three services."""

from __future__ import annotations

import json
import secrets

import numpy as np
import pandas as pd
import pytest
import requests

from core.contract import FEATURE_NAMES, to_chance
from tests.docker.stack import APPLICANT, Stack, docker

pytestmark = pytest.mark.docker
TOLERANCE = 1e-12  # the service's fast path and scikit-learn's may differ in the last bits, not more
MODEL_SERVICES = ("single", "batch")


def expected(model, applicants: list[dict]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The registered model's own prediction (scikit-learn, in this process), clipped to a chance."""
    rows = pd.DataFrame([[a[name] for name in FEATURE_NAMES] for a in applicants], columns=list(FEATURE_NAMES))
    return to_chance(model.predict(rows))


def applicants(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"gre_score": int(rng.integers(290, 341)), "toefl_score": int(rng.integers(92, 121)),
         "university_rating": int(rng.integers(1, 6)), "sop": float(rng.integers(2, 11)) / 2,
         "lor": float(rng.integers(2, 11)) / 2, "cgpa": round(float(rng.uniform(6.8, 9.9)), 2),
         "research": int(rng.integers(0, 2))}
        for _ in range(n)
    ]  # fmt: skip


def vendored_applicants(n: int, seed: int) -> list[dict]:
    """Applicants drawn from the vendored file the model was trained on: they do not drift."""
    from tests.conftest import RAW_DATA

    frame = pd.read_csv(RAW_DATA).rename(columns=lambda name: name.strip())
    names = dict(zip(["GRE Score", "TOEFL Score", "University Rating", "SOP", "LOR", "CGPA", "Research"],
                     FEATURE_NAMES, strict=True))  # fmt: skip
    rows = frame[list(names)].rename(columns=names).sample(n, replace=True, random_state=seed)
    kinds = {"gre_score": int, "toefl_score": int, "university_rating": int, "research": int}
    return [{k: kinds.get(k, float)(v) for k, v in row.items()} for row in rows.to_dict("records")]


def test_run_docker_waited_for_health_and_printed_the_url(stack: Stack) -> None:
    assert f"API: http://127.0.0.1:{stack.port}" in stack.started_output
    assert f"image {stack.image}" in stack.started_output
    assert all(stack.healthy(service) for service in ("api", *MODEL_SERVICES))


def test_model_version_picks_the_image_of_that_model(stack: Stack, pipeline_run) -> None:  # type: ignore[no-untyped-def]
    again = stack.make(
        "run-docker", DOCKER_IMAGE="", MODEL_VERSION=pipeline_run.model_tag.split(":")[1], MONITORING="1"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"model {pipeline_run.model_tag})" in again.stdout


def test_stop_docker_stops_only_its_own_stack(stack: Stack) -> None:
    other = stack.make("stop-docker", COMPOSE_PROJECT_NAME=f"{stack.project}-other")
    assert other.returncode == 0, other.stderr
    assert all(stack.healthy(service) for service in ("api", *MODEL_SERVICES))


def test_login_and_predict_equal_the_registered_models_own_prediction(stack: Stack, in_process_model) -> None:  # type: ignore[no-untyped-def]
    headers = stack.login()
    answer = stack.post("/predict", APPLICANT, headers)
    assert answer.status_code == 200, answer.text
    assert abs(answer.json()["chance"] - expected(in_process_model, [APPLICANT])[0]) <= TOLERANCE
    assert requests.post(f"{stack.url}/predict", json=APPLICANT, timeout=30).status_code == 401


def test_predict_batch_equals_the_model_row_by_row(stack: Stack, in_process_model) -> None:  # type: ignore[no-untyped-def]
    batch = applicants(200, seed=1)
    answer = stack.post("/predict_batch", {"applicants": batch}, stack.login())
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["chances"], expected(in_process_model, batch), rtol=0, atol=TOLERANCE)


def test_a_csv_batch_through_the_published_port_equals_the_model(stack: Stack, in_process_model) -> None:  # type: ignore[no-untyped-def]
    """CSV in and out (issue 12) across the containers: the API parses it, the batch service predicts."""
    batch = applicants(300, seed=4)
    body = ",".join(FEATURE_NAMES) + "\n" + "".join(",".join(str(a[n]) for n in FEATURE_NAMES) + "\n" for a in batch)
    headers = {**stack.login(), "Content-Type": "text/csv"}
    answer = requests.post(f"{stack.url}/predict_batch", data=body.encode(), headers=headers, timeout=60)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv"), answer.text[:300]
    lines = answer.text.splitlines()
    assert lines[0] == "prediction_id,chance,interval_low,interval_high" and len(lines) == 301
    chances = [float(line.split(",")[1]) for line in lines[1:]]
    np.testing.assert_allclose(chances, expected(in_process_model, batch), rtol=0, atol=TOLERANCE)


def test_a_job_completes_with_the_models_predictions(stack: Stack, in_process_model) -> None:  # type: ignore[no-untyped-def]
    rows = applicants(1000, seed=2)
    submitted = stack.post("/jobs", {"applicants": rows}, stack.login())
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    stack.wait_for_job(job_id, "completed")
    results = stack.results(job_id)
    assert results["rows"] == len(rows)
    np.testing.assert_allclose(results["chances"], expected(in_process_model, rows), rtol=0, atol=TOLERANCE)


def test_only_the_api_port_is_published(stack: Stack) -> None:
    containers = stack.containers()
    published = {
        service: [f"{b['HostIp']}:{b['HostPort']}" for port in (c["HostConfig"]["PortBindings"] or {}).values()
                  for b in port or []]
        for service, c in containers.items()
    }  # fmt: skip
    assert published["api"] == [f"127.0.0.1:{stack.port}"]
    assert published["prometheus"] == [f"127.0.0.1:{stack.prometheus_port}"]  # loopback, monitoring profile
    for service in MODEL_SERVICES:
        assert not containers[service]["HostConfig"]["PortBindings"]
        networks = containers[service]["NetworkSettings"]["Networks"]
        assert list(networks) == [f"{stack.project}_models"]  # internal: no port mapping, no way out
    # The engine's own view: this project publishes exactly these two host ports.
    ports = docker("ps", "--filter", f"label=com.docker.compose.project={stack.project}", "--format", "{{.Ports}}")
    bound = {p.split("->")[0] for line in ports.stdout.splitlines() for p in line.split(", ") if "->" in p}
    assert bound == {f"127.0.0.1:{stack.port}", f"127.0.0.1:{stack.prometheus_port}"}


def test_every_container_runs_as_non_root_with_its_limits(stack: Stack) -> None:
    limits = {"api": (768, 1.0), "single": (768, 1.0), "batch": (768, 1.0), "prometheus": (256, 0.5)}
    containers = stack.containers()
    assert set(containers) == set(limits)
    for service, container in containers.items():
        user = container["Config"]["User"]
        assert user and user.split(":")[0] not in ("0", "root"), (service, user)
        assert stack.compose("exec", "-T", service, "id", "-u").stdout.strip() != "0", service
        memory_mb, cpus = limits[service]
        assert container["HostConfig"]["Memory"] == memory_mb * 1024 * 1024, service
        assert container["HostConfig"]["NanoCpus"] == int(cpus * 1e9), service


def test_the_model_services_refuse_pickle_bodies(stack: Stack) -> None:
    """From inside the network (the API container), a real pickle that would create a file if loaded."""
    marker = f"/tmp/pickle-ran-{secrets.token_hex(4)}"
    probe = (
        "import json, os, pickle, urllib.error, urllib.request\n"
        "class Payload:\n"
        f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        "codes = {}\n"
        "for name in ('single', 'batch'):\n"
        "    request = urllib.request.Request(f'http://{name}:3000/predict', data=pickle.dumps(Payload()),\n"
        "        headers={'Content-Type': 'application/vnd.bentoml+pickle'})\n"
        "    try: codes[name] = urllib.request.urlopen(request, timeout=30).status\n"
        "    except urllib.error.HTTPError as error: codes[name] = error.code\n"
        "print(json.dumps(codes))\n"
    )
    codes = json.loads(stack.compose("exec", "-T", "api", "python", "-c", probe).stdout)
    assert codes == {"single": 415, "batch": 415}
    for service in MODEL_SERVICES:
        assert stack.compose("exec", "-T", service, "test", "-e", marker, check=False).returncode == 1


def test_a_real_prometheus_loads_the_alert_rules_and_fires_drift_for_shifted_applicants(stack: Stack) -> None:
    """The loop in the stack: shifted applicants (CGPA 1.5 lower) are logged, their drift computed by the
    API, scraped by the stack's Prometheus, and AdmissionsInputDrift fires on cgpa. Outcomes for some of
    them feed the realised-accuracy panels (checked with data by the next test)."""
    prometheus = f"http://127.0.0.1:{stack.prometheus_port}/api/v1"
    rules = requests.get(f"{prometheus}/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"AdmissionsInputDrift", "AdmissionsJobsDatabaseDown", "AdmissionsRealisedErrorHigh"} <= loaded
    shifted = [{**row, "cgpa": round(row["cgpa"] - 1.5, 2)} for row in vendored_applicants(300, seed=8)]
    headers = stack.login()
    answer = stack.post("/predict_batch", {"applicants": shifted}, headers)
    assert answer.status_code == 200, answer.text[:300]
    ids = answer.json()["prediction_ids"]

    def outcomes_recorded() -> bool:  # the log is written every half second
        sent = {"outcomes": [{"prediction_id": pid, "outcome": 0.6} for pid in ids[:40]]}
        return stack.post("/outcomes", sent, headers).status_code in (200, 409)

    stack.wait_until(outcomes_recorded, "outcomes recorded against the logged predictions")

    def firing() -> list[dict] | None:
        query = 'ALERTS{alertname="AdmissionsInputDrift", alertstate="firing"}'
        found = requests.get(f"{prometheus}/query", params={"query": query}, timeout=10).json()["data"]["result"]
        return [alert["metric"] for alert in found] or None

    alerts = stack.wait_until(firing, "AdmissionsInputDrift firing in the stack's Prometheus")
    assert "cgpa" in {alert["feature"] for alert in alerts} and alerts[0]["severity"] == "warning"
    monitoring = stack.get("/monitoring", headers).json()
    assert any("cgpa" in reason for figures in monitoring["models"].values() for reason in figures["reasons"])


def test_prometheus_scrapes_api_single_and_batch(stack: Stack) -> None:
    def up() -> dict[str, str] | None:
        answer = requests.get(f"http://127.0.0.1:{stack.prometheus_port}/api/v1/query", params={"query": "up"},
                              timeout=10).json()  # fmt: skip
        values = {r["metric"]["service"]: r["value"][1] for r in answer["data"]["result"]}
        return values if values == {"api": "1", "single": "1", "batch": "1"} else None

    assert stack.wait_until(up, "up == 1 for api, single and batch") == {"api": "1", "single": "1", "batch": "1"}


def test_every_dashboard_query_is_valid_promql_with_data(stack: Stack) -> None:
    from tests.conftest import ROOT

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "admissions.json").read_text())
    exprs = [t["expr"].replace("$__rate_interval", "1m") for p in dashboard["panels"] for t in p["targets"]]

    def answers() -> list[str] | None:
        # Traffic for the panels, errors included (a 401), within the last minute's rates.
        stack.post("/predict_batch", {"applicants": applicants(50, seed=3)}, stack.login())
        requests.post(f"{stack.url}/predict", json=APPLICANT, timeout=30)
        results = []
        for expr in exprs:
            body = requests.get(f"http://127.0.0.1:{stack.prometheus_port}/api/v1/query", params={"query": expr},
                                timeout=10).json()  # fmt: skip
            assert body["status"] == "success", (expr, body)
            results.append(expr if body["data"]["result"] else "")
        return results if all(results) else None

    assert stack.wait_until(answers, "every dashboard query has data") == exprs
