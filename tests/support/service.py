"""Real ``bentoml serve`` processes on free loopback ports: the API, or one model service.

Each server gets a temporary users file and jobs database and a JWT secret generated at run time, is
waited for on /readyz, and is stopped with its whole process tree (the API workers and the model
services are children of ``bentoml serve``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from argon2 import PasswordHasher

from tests.support import processes
from tests.support.paths import ROOT
from tests.support.ports import free_port

if TYPE_CHECKING:
    from tests.support.pipeline import PipelineRun

PASSWORD = "correct horse battery"
MAX_BATCH = 50
MAX_JOB = 400
MAX_CSV_BATCH = 100
MAX_CSV_JOB = 1_000
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


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

    def command(self) -> list[str]:
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
        return command

    def launch(self) -> Server:
        """Start the process and return at once (``wait`` waits until it is ready)."""
        self.process = processes.start(self.command(), self.env, self.log)
        return self

    def wait(self, timeout: float = 120) -> Server:
        assert self.process is not None
        try:
            processes.wait_ready(f"{self.url}/readyz", self.process, self.log, timeout)
        except AssertionError:
            self.stop()
            raise
        return self

    def start(self, timeout: float = 120) -> Server:
        return self.launch().wait(timeout)

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)

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


def server_home(run: PipelineRun, folder: Path) -> Path:
    """A BENTOML_HOME of the server's own whose store is the run's (links): every ``bentoml serve`` empties
    ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts, so servers sharing a home lose each
    other's metrics (the shared server's /metrics lost every gauge set before another server started)."""
    home = folder / "bentoml-home"
    home.mkdir(exist_ok=True)
    for part in ("models", "bentos", "aliases", "promotions"):
        link = home / part
        if not link.is_symlink():
            link.symlink_to(Path(run.bentoml_home) / part, target_is_directory=True)
    return home


def add_user(path: Path, name: str, password: str = PASSWORD) -> None:
    """A test user, hashed with argon2id's cheapest work factors: the service verifies it with its own
    code (argon2 reads the factors from the hash) in ~0.4 ms of CPU instead of ~180 ms, and the suite
    logs in hundreds of times. ``python -m service.users add`` (this version's factors) is tested in
    tests/service/test_svc_users.py."""
    from service import users

    known = users.load(path)
    known[name] = users.User(id=f"u-{uuid.uuid4().hex}", hash=_CHEAP_HASHER.hash(password))
    users.save(path, known)


def service_env(run: PipelineRun, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: the pipeline's model store, fresh secret, users and jobs."""
    folder.mkdir(parents=True, exist_ok=True)
    users_file = folder / "users.json"
    if not users_file.exists():
        for name in ("alice", "bob"):
            add_user(users_file, name)
    env = {
        **os.environ,
        "BENTOML_HOME": str(server_home(run, folder)),
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
        # One API worker unless a test is about several (it says "2"): a worker costs ~3 s of CPU to
        # start, and the suite starts dozens of servers on two cores.
        "ADMISSIONS_API_WORKERS": "1",
        "PYTHONPATH": str(ROOT),
    }
    for name in ("ADMISSIONS_MODEL_TAG", "SINGLE_MODEL_URL", "BATCH_MODEL_URL", "ADMISSIONS_DEV_MODE"):
        env.pop(name, None)
    env.update(extra)
    return env


@contextlib.contextmanager
def split_topology(
    run: PipelineRun, folder: Path, api_cgroup: Path | None = None, base: dict[str, str] | None = None, **extra: str
) -> Iterator[tuple[Service, Server, Server]]:
    """API, single and batch as three servers (as in docker-compose), the API calling the others by URL.

    The two model services start side by side, then the API (as compose starts it, once they are
    healthy); ``extra`` is the API's environment on top of ``base`` (default: ``service_env(run,
    folder)``), ``api_cgroup`` a cgroup's process list for the API.
    """
    base = base if base is not None else service_env(run, folder)
    single = Server(base, folder / "single.log", target="service.models:SingleModel")
    batch = Server(base, folder / "batch.log", target="service.models:BatchModel")
    env = {**base, "SINGLE_MODEL_URL": single.url, "BATCH_MODEL_URL": batch.url, **extra}
    api = Server(env, folder / "api.log", cgroup_procs=api_cgroup)
    try:
        for server in (single, batch):
            server.launch()
        for server in (single, batch):
            server.wait()
        api.start()
        yield Service(api.url, env, run.model_tag, api), single, batch
    finally:
        for server in (api, single, batch):
            server.stop()


def model_predictions(run: PipelineRun, rows: list[dict[str, Any]]) -> list[float]:
    """What the registered sklearn pipeline itself predicts (DataFrame in, clipped): loaded in this
    process when the run's store is this session's BENTOML_HOME (BentoML reads that one), else in a
    subprocess so that the session's own store is not touched."""
    if Path(os.environ["BENTOML_HOME"]) == Path(run.bentoml_home):
        import pandas as pd

        from core.contract import FEATURE_NAMES, to_chance

        frame = pd.DataFrame(rows)[list(FEATURE_NAMES)]
        return [float(value) for value in to_chance(_session_model(run.model_tag).predict(frame))]
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


@functools.cache
def _session_model(tag: str) -> Any:
    import bentoml

    return bentoml.sklearn.load_model(tag)
