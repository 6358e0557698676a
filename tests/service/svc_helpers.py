"""Helpers for the service tests: real ``bentoml serve`` processes on free loopback ports.

Each server gets a temporary users file and jobs database and a JWT secret generated at run time, is
waited for on /readyz, and is killed with its whole process group (the API workers and the model
services are children of ``bentoml serve``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from service import users
from tests.conftest import ROOT, PipelineRun
from tests.servers import free_port, stop, wait_ready

PASSWORD = "correct horse battery"
MAX_BATCH = 50
MAX_JOB = 400
MAX_CSV_BATCH = 100
MAX_CSV_JOB = 1_000


@dataclass
class Server:
    """One ``bentoml serve`` process group; ``target`` is e.g. ``service.api:AdmissionsAPI``."""

    env: dict[str, str]
    log: Path
    target: str = "service.api:AdmissionsAPI"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    cgroup_procs: Path | None = None  # a cgroup's process list to start in (e.g. under a memory limit)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> Server:
        command = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            self.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.cgroup_procs is not None:  # join first, so every worker started later is inside too
            command = ["sh", "-c", f'echo $$ > "{self.cgroup_procs}" && exec "$@"', "serve", *command]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_ready(f"{self.url}/readyz", self.process, self.log, timeout)
        except AssertionError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class Service:
    """A running API service and what the tests need to talk to it."""

    url: str
    env: dict[str, str]
    model_tag: str
    server: Server

    def token(self, username: str = "alice", password: str = PASSWORD) -> str:
        answer = requests.post(f"{self.url}/login", json={"username": username, "password": password}, timeout=30)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def headers(self, username: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}


def service_env(run: PipelineRun, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: the pipeline's model store, fresh secret, users and jobs."""
    folder.mkdir(parents=True, exist_ok=True)
    users_file = folder / "users.json"
    if not users_file.exists():
        for name in ("alice", "bob"):
            users.add(users_file, name, PASSWORD)
    env = {
        **os.environ,
        "BENTOML_HOME": str(run.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "ADMISSIONS_USERS_FILE": str(users_file),
        "ADMISSIONS_JOBS_DB": str(folder / "jobs.sqlite"),
        "ADMISSIONS_MAX_BATCH_SIZE": str(MAX_BATCH),
        "ADMISSIONS_MAX_JOB_SIZE": str(MAX_JOB),
        "ADMISSIONS_MAX_CSV_BATCH_SIZE": str(MAX_CSV_BATCH),  # also a job's chunk: jobs of MAX_JOB rows take several
        "ADMISSIONS_MAX_CSV_JOB_SIZE": str(MAX_CSV_JOB),
        # Every test client is 127.0.0.1, and schemathesis alone fails hundreds of logins: the shared
        # servers must not throttle that address. Per-pair throttling stays on (tested from 127.0.0.7).
        "ADMISSIONS_LOGIN_FAILURES_PER_ADDRESS": "1000000",
        "ADMISSIONS_LOGIN_FAILURES_PER_USER": "1000000",
        "PYTHONPATH": str(ROOT),
    }
    for name in ("ADMISSIONS_MODEL_TAG", "SINGLE_MODEL_URL", "BATCH_MODEL_URL", "ADMISSIONS_DEV_MODE"):
        env.pop(name, None)
    env.update(extra)
    return env


def applicant(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "gre_score": 320,
        "toefl_score": 110,
        "university_rating": 4,
        "sop": 4.5,
        "lor": 4.0,
        "cgpa": 9.1,
        "research": 1,
    }
    base.update(overrides)
    return base


def applicants(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """Valid applicants spread over the contract's ranges."""
    import random

    rng = random.Random(seed)
    return [
        applicant(
            gre_score=rng.randint(260, 340),
            toefl_score=rng.randint(0, 120),
            university_rating=rng.randint(1, 5),
            sop=rng.randint(2, 10) / 2,
            lor=rng.randint(2, 10) / 2,
            cgpa=round(rng.uniform(0, 10), 2),
            research=rng.randint(0, 1),
        )
        for _ in range(count)
    ]


def model_predictions(run: PipelineRun, rows: list[dict[str, Any]]) -> list[float]:
    """What the registered sklearn pipeline itself predicts (DataFrame in, clipped), in a subprocess
    so that this test session's own BENTOML_HOME is not touched."""
    code = (
        "import json, sys, bentoml, pandas as pd\n"
        "from core.contract import FEATURE_NAMES, to_chance\n"
        "model = bentoml.sklearn.load_model(sys.argv[1])\n"
        "frame = pd.DataFrame(json.load(sys.stdin))[list(FEATURE_NAMES)]\n"
        "print(json.dumps(to_chance(model.predict(frame)).tolist()))\n"
    )
    env = {**os.environ, "BENTOML_HOME": str(run.bentoml_home)}
    result = subprocess.run(
        [sys.executable, "-c", code, run.model_tag],
        input=json.dumps(rows),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [float(value) for value in json.loads(result.stdout)]
