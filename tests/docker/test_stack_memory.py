"""Memory under concurrency, under the API container's real cgroup limit (768 MB): concurrent
maximum-size bodies are answered or refused (503/429 with Retry-After), and no process of the API
container is OOM-killed (the cgroup's own ``oom_kill`` count, the worker pids, Docker's OOMKilled and
restart count). service/middleware/memory_budget.py is what makes this hold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from core.contract import FEATURE_NAMES
from tests.docker.stack import Stack, docker

pytestmark = pytest.mark.docker
LARGEST_CSV_JOB = 1_000_000  # the largest job limit the docs use (docs/benchmarks.md, bench/service.sh)
REFUSED = (429, 503)


def csv_body(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    columns = [rng.integers(290, 341, rows), rng.integers(92, 121, rows), rng.integers(1, 6, rows),
               rng.integers(2, 11, rows) / 2, rng.integers(2, 11, rows) / 2, np.round(rng.uniform(6.8, 9.9, rows), 2),
               rng.integers(0, 2, rows)]  # fmt: skip
    lines = np.char.add(np.array(columns[0], dtype=str), "")
    for column in columns[1:]:
        lines = np.char.add(np.char.add(lines, ","), np.array(column, dtype=str))
    return (",".join(FEATURE_NAMES) + "\n" + "\n".join(lines.tolist()) + "\n").encode()


def oom_kills(stack: Stack) -> int:
    """The kernel's count of OOM kills in the API container's memory cgroup (v1 or v2)."""
    files = "/sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control"  # v2, v1: one exists
    shown = docker("exec", f"{stack.project}-api-1", "sh", "-c", f"cat {files} 2>/dev/null; true").stdout
    counts = [int(line.split()[1]) for line in shown.splitlines() if line.startswith("oom_kill ")]
    assert counts, f"no oom_kill count in the API container's cgroup files: {shown!r}"
    return sum(counts)


def api_state(stack: Stack) -> tuple[bool, int, str]:
    container = json.loads(docker("inspect", f"{stack.project}-api-1").stdout)[0]
    workers = docker("top", f"{stack.project}-api-1", "-eo", "pid,args").stdout
    pids = " ".join(sorted(line.split()[0] for line in workers.splitlines() if "worker.service" in line))
    return container["State"]["OOMKilled"], container["RestartCount"], pids


@pytest.fixture
def api_limits(
    stack: Stack, secrets_dir: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[None]:
    """The API container with ``request.param`` added to its environment, and back to the suite's own
    after the test (the model services are left running)."""
    extra: dict[str, str] = getattr(request, "param", {})
    if not extra:
        yield
        return
    env_file = tmp_path / "raised.env"
    env_file.write_text(Path(secrets_dir["env_file"]).read_text() + "".join(f"{k}={v}\n" for k, v in extra.items()))
    recreate_api(stack, str(env_file))
    try:
        yield
    finally:
        recreate_api(stack, secrets_dir["env_file"])


def recreate_api(stack: Stack, env_file: str) -> None:
    saved, stack.env_file = stack.env_file, env_file
    try:
        stack.compose("up", "-d", "--no-deps", "--wait", "--pull", "never", "api")
    finally:
        stack.env_file = saved


def send_all(stack: Stack, path: str, body: bytes, clients: int) -> list[requests.Response]:
    headers = {**stack.login(), "Content-Type": "text/csv"}

    def one(_: int) -> requests.Response:
        return requests.post(f"{stack.url}{path}", data=body, headers=headers, timeout=600)

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


@pytest.mark.parametrize(
    ("path", "rows", "clients", "api_limits"),
    [("/predict_batch", 100_000, 16, {}), ("/predict_batch", 100_000, 32, {}), ("/predict_batch", 100_000, 64, {}),
     ("/jobs", 400_000, 4, {}),
     ("/jobs", LARGEST_CSV_JOB, 4, {"ADMISSIONS_MAX_CSV_JOB_SIZE": str(LARGEST_CSV_JOB)})],
    ids=["batch-x16", "batch-x32", "batch-x64", "jobs-default-x4", "jobs-largest-x4"],
    indirect=["api_limits"],
)  # fmt: skip
def test_concurrent_maximum_size_bodies_are_answered_or_refused_never_oom_killed(
    stack: Stack, api_limits: None, path: str, rows: int, clients: int
) -> None:
    before = api_state(stack)
    kills = oom_kills(stack)
    answers = send_all(stack, path, csv_body(rows, seed=rows + clients), clients)

    ok = 202 if path == "/jobs" else 200
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {ok, *REFUSED}, statuses
    assert ok in statuses, statuses
    for answer in answers:
        if answer.status_code in REFUSED:
            assert int(answer.headers["Retry-After"]) >= 1, answer.headers
        elif path == "/predict_batch":
            assert answer.text.count("\n") == rows + 1  # the header and a line per applicant
    if path == "/jobs":  # the accepted jobs run in the same worker: they must complete too
        for answer in answers:
            if answer.status_code == ok:
                assert stack.wait_for_job(answer.json()["job_id"], "completed")["rows"] == rows

    assert oom_kills(stack) == kills
    oom_killed, restarts, workers = api_state(stack)
    assert (oom_killed, restarts, workers) == (False, before[1], before[2])
