"""The README's first screen, run as written: add a user with make, `make serve`, the curl session, and
the Python client of the API-client section. Only the port and the state folders differ (a free port,
temporary users file and jobs database), through the variables the README documents."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.pipeline import PipelineRun
from tests.support.ports import free_port
from tests.support.processes import start, stop, wait_ready

pytestmark = pytest.mark.e2e
README = (ROOT / "README.md").read_text()
KEEP_ENV = ("-o", ".tox/dev/.locked-from-requirements")  # never rebuild the environment from a test


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def first_block_with(language: str, marker: str) -> str:
    return next(block for block in blocks(language) if marker in block)


def run(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_first_prediction_works_as_the_readme_says(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BENTOML_HOME": str(pipeline_run.bentoml_home),
        "ADMISSIONS_USERS_FILE": str(tmp_path / "users.json"),
        "ADMISSIONS_JOBS_DB": str(tmp_path / "jobs.sqlite"),
        "PORT": str(port),
    }
    setup = first_block_with("bash", "make users-add NAME=alice")
    assert "make serve" in setup and "export JWT_SECRET_KEY" in setup
    # The set-up block up to `make serve`, then `make serve` itself in the background. Its `make` never
    # (re)creates the environment (MAKEFLAGS cannot carry -o: a stale stamp once rebuilt .tox/dev here).
    before_serve = setup.split("make serve")[0]
    keep = f'make() {{ command make {" ".join(KEEP_ENV)} "$@"; }}\n'
    done = run(["bash", "-euo", "pipefail", "-c", keep + before_serve + "\necho $JWT_SECRET_KEY"], env, 120)
    assert done.returncode == 0, done.stdout + done.stderr
    env["JWT_SECRET_KEY"] = done.stdout.strip().splitlines()[-1]
    assert len(env["JWT_SECRET_KEY"]) >= 48
    log = tmp_path / "serve.log"
    server = start(["make", *KEEP_ENV, "serve"], env, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", server, log)
        session = first_block_with("bash", "TOKEN=$(curl").replace("127.0.0.1:3000", f"127.0.0.1:{port}")
        answer = run(["bash", "-euo", "pipefail", "-c", session], env, 60)
        assert answer.returncode == 0, answer.stderr
        assert '"chance"' in answer.stdout and '"interval"' in answer.stdout, answer.stdout

        client = first_block_with("python", "SyncHTTPClient").replace("127.0.0.1:3000", f"127.0.0.1:{port}")
        ran = run([sys.executable, "-c", client], env, 120)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert ran.stdout.count("'chance'") >= 1 and "'job_id'" in ran.stdout, ran.stdout
    finally:
        stop(server)
