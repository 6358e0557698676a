"""The compose stack under test, driven the way a user drives it: make targets, `docker compose`, and
HTTP through the published API port only."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.conftest import ROOT

LONG_WAIT_S = 600  # upper bound of any wait below; never a measured time being asserted
POLL_S = 0.5
APPLICANT = {"gre_score": 320, "toefl_score": 110, "university_rating": 4, "sop": 4.5, "lor": 4.0, "cgpa": 9.1,
             "research": 1}  # fmt: skip


def docker(*args: str, check: bool = True, timeout: float = LONG_WAIT_S) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done


@dataclass
class Stack:
    project: str
    port: int
    prometheus_port: int
    image: str
    env_file: str
    users_file: str
    password: str
    started_output: str = ""
    _token: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "ADMISSIONS_ENV_FILE": self.env_file,
            "ADMISSIONS_USERS_HOST_FILE": self.users_file,
            "DOCKER_IMAGE": self.image,
            "PORT": str(self.port),
            "PROMETHEUS_PORT": str(self.prometheus_port),
            **extra,
        }

    def make(self, target: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "-s", target], cwd=ROOT, capture_output=True, text=True, check=False,
                              env=self.environment(**extra), timeout=LONG_WAIT_S)  # fmt: skip

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`docker compose` on this stack, with the same files and variables `make run-docker` used."""
        with open(self.users_file) as users:
            env = self.environment(
                ADMISSIONS_IMAGE=self.image, API_PORT=str(self.port), ADMISSIONS_USERS_JSON=users.read()
            )
        command = ["docker", "compose", "--env-file", self.env_file, *args]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, env=env,
                              timeout=LONG_WAIT_S)  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done

    def containers(self) -> dict[str, dict[str, Any]]:
        """`docker inspect` of the stack's running containers, by service name."""
        ids = self.compose("ps", "-q").stdout.split()
        inspected = json.loads(docker("inspect", *ids).stdout) if ids else []
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}

    # --- the API, through the published port -----------------------------------------------------
    def login(self) -> dict[str, str]:
        answer = requests.post(f"{self.url}/login", json={"username": "officer", "password": self.password}, timeout=30)
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def post(self, path: str, body: Any, headers: dict[str, str]) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, headers=headers, timeout=120)

    def get(self, path: str, headers: dict[str, str]) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=headers, timeout=60)

    def wait_until(self, condition: Any, what: str, timeout: float = LONG_WAIT_S) -> Any:
        """Poll ``condition()`` (errors count as "not yet") until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = condition()
            except (requests.RequestException, AssertionError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(POLL_S)
        raise AssertionError(f"{what}: still not so after {timeout:.0f} s (last: {last!r})")

    def job_status(self, job_id: str) -> dict[str, Any]:
        answer = self.get(f"/jobs/status?job_id={job_id}", self.login())
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait_for_job(self, job_id: str, status: str) -> dict[str, Any]:
        return self.wait_until(lambda: (s := self.job_status(job_id))["status"] == status and s, f"job {status}")

    def results(self, job_id: str) -> dict[str, Any]:
        answer = self.get(f"/jobs/results?job_id={job_id}", self.login())
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def healthy(self, service: str) -> bool:
        container = self.containers().get(service)
        return bool(container) and container["State"].get("Health", {}).get("Status") == "healthy"  # type: ignore[index]
