"""The `postgres` profile, `make run-docker POSTGRES=1`: the jobs in PostgreSQL (deploy/postgres, built
from Debian's package) on a network only the API shares; a job's row really is in PostgreSQL, and the job
survives `docker compose restart api` and `make stop-docker` then `make run-docker POSTGRES=1` (the volume
stays). A stack of its own (no monitoring), next to the suite's, removed with its volumes at the end."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.docker.stack import Stack, docker
from tests.docker.test_stack import TOLERANCE, applicants, expected
from tests.servers import free_port

pytestmark = pytest.mark.docker
JOB_ROWS = 1000
POSTGRES = ("--profile", "postgres")  # compose commands name the service only with its profile on


def new_stack(image: str, env_file: Path, secrets_dir: dict[str, str]) -> Stack:
    return Stack(
        project=f"admissions-test-pg-{secrets.token_hex(4)}",
        port=free_port(),
        prometheus_port=free_port(),
        image=image,
        env_file=str(env_file),
        users_file=secrets_dir["users_file"],
        password=secrets_dir["password"],
    )


@pytest.fixture(scope="module")
def pg_stack(image: dict, secrets_dir: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The suite's secrets plus a PostgreSQL password generated for this run, as .env.example says."""
    env_file = tmp_path_factory.mktemp("postgres-stack") / "stack.env"
    env_file.write_text(
        Path(secrets_dir["env_file"]).read_text() + f"ADMISSIONS_POSTGRES_PASSWORD={secrets.token_urlsafe(32)}\n"
    )
    stack = new_stack(image["image"], env_file, secrets_dir)
    try:
        started = stack.make("run-docker", POSTGRES="1")
        assert started.returncode == 0, started.stdout + started.stderr
        stack.started_output = started.stdout
        yield stack
    finally:
        stack.compose("--profile", "*", "down", "-v", "--remove-orphans", check=False)


@pytest.fixture(scope="module")
def completed_job(pg_stack: Stack, in_process_model) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A job submitted through the API and completed, its results checked against the model."""
    rows = applicants(JOB_ROWS, seed=20)
    submitted = pg_stack.post("/jobs", {"applicants": rows}, pg_stack.login())
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    pg_stack.wait_for_job(job_id, "completed")
    results = pg_stack.results(job_id)
    assert results["rows"] == JOB_ROWS
    np.testing.assert_allclose(results["chances"], expected(in_process_model, rows), rtol=0, atol=TOLERANCE)
    return {"job_id": job_id, "results": results}


def container(stack: Stack, service: str) -> dict[str, Any]:
    ids = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={stack.project}",
                 "--filter", f"label=com.docker.compose.service={service}").stdout.split()  # fmt: skip
    assert len(ids) == 1, (service, ids)
    return dict(json.loads(docker("inspect", ids[0]).stdout)[0])


def psql(stack: Stack, sql: str) -> str:
    """As the container's `postgres` user through its socket (peer authentication), never the network."""
    return stack.compose(*POSTGRES, "exec", "-T", "postgres", "psql", "-d", "admissions", "-v", "ON_ERROR_STOP=1",
                         "-Atc", sql).stdout.strip()  # fmt: skip


def test_postgres_1_without_a_password_in_the_env_file_is_one_sentence(
    image: dict, secrets_dir: dict[str, str]
) -> None:
    stack = new_stack(image["image"], Path(secrets_dir["env_file"]), secrets_dir)
    refused = stack.make("run-docker", POSTGRES="1")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stdout + refused.stderr
    assert refused.stderr.splitlines()[0] == (
        f"POSTGRES=1 needs ADMISSIONS_POSTGRES_PASSWORD in {stack.env_file}, 24+ characters of A-Z a-z 0-9 _ -: "
        "generate one as .env.example shows."
    )
    assert docker("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={stack.project}").stdout == ""


def test_postgres_is_healthy_non_root_unpublished_and_shares_a_network_with_the_api_only(pg_stack: Stack) -> None:
    assert f"Jobs: PostgreSQL (service postgres, volume {pg_stack.project}_postgres)" in pg_stack.started_output
    postgres = container(pg_stack, "postgres")
    assert postgres["State"]["Health"]["Status"] == "healthy"
    assert postgres["Config"]["User"] == "999:999"
    assert pg_stack.compose(*POSTGRES, "exec", "-T", "postgres", "id", "-u").stdout.strip() == "999"
    assert not postgres["HostConfig"]["PortBindings"]
    assert postgres["HostConfig"]["Memory"] == 512 * 1024 * 1024
    assert list(postgres["NetworkSettings"]["Networks"]) == [f"{pg_stack.project}_jobs-db"]
    network = json.loads(docker("network", "inspect", f"{pg_stack.project}_jobs-db").stdout)[0]
    assert network["Internal"] is True
    on_it = {c["Name"].removeprefix(f"{pg_stack.project}-").rsplit("-", 1)[0] for c in network["Containers"].values()}
    assert on_it == {"api", "postgres"}
    # The password comes in as a file, not in the container's environment; the API gets the URL.
    password = next(line.split("=", 1)[1] for line in Path(pg_stack.env_file).read_text().splitlines()
                    if line.startswith("ADMISSIONS_POSTGRES_PASSWORD="))  # fmt: skip
    assert not any(password in variable for variable in postgres["Config"]["Env"])
    api_env = dict(v.split("=", 1) for v in container(pg_stack, "api")["Config"]["Env"])
    assert api_env["ADMISSIONS_JOBS_URL"] == f"postgresql://admissions:{password}@postgres:5432/admissions"
    # A model service has no route to it (nor a name for it).
    address = postgres["NetworkSettings"]["Networks"][f"{pg_stack.project}_jobs-db"]["IPAddress"]
    probe = f"import socket; socket.create_connection(('{address}', 5432), timeout=2)"
    refused = pg_stack.compose("exec", "-T", "single", "python", "-c", probe, check=False)
    assert refused.returncode == 1, refused.stdout
    unreachable = ("Network is unreachable", "No route to host", "timed out")
    assert any(why in refused.stderr for why in unreachable), refused.stderr


def test_a_job_completes_and_its_row_is_in_postgresql(pg_stack: Stack, completed_job: dict[str, Any]) -> None:
    job_id = completed_job["job_id"]
    row = psql(pg_stack, f"SELECT status, n_rows FROM jobs WHERE id = '{job_id}'")
    assert row == f"completed|{JOB_ROWS}"
    kinds = psql(pg_stack, f"SELECT string_agg(kind, ',' ORDER BY kind) FROM job_data WHERE job_id = '{job_id}'")
    assert kinds == "columns,results"  # the job's rows and results, in their own table (service/jobs.py)
    # ... and nothing went to the SQLite file the API uses without the profile.
    assert pg_stack.compose("exec", "-T", "api", "test", "-e", "/var/lib/admissions/jobs.sqlite",
                            check=False).returncode == 1  # fmt: skip


def test_the_job_survives_restarting_the_api(pg_stack: Stack, completed_job: dict[str, Any]) -> None:
    pg_stack.compose("restart", "api")
    pg_stack.wait_until(lambda: pg_stack.healthy("api"), "api healthy again")
    assert pg_stack.results(completed_job["job_id"]) == completed_job["results"]


def test_stop_docker_stops_postgres_and_its_volume_keeps_the_jobs(
    pg_stack: Stack, completed_job: dict[str, Any]
) -> None:
    job_id = completed_job["job_id"]
    stopped = pg_stack.make("stop-docker")
    assert stopped.returncode == 0, stopped.stderr
    assert docker("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={pg_stack.project}").stdout == ""
    assert docker("volume", "inspect", f"{pg_stack.project}_postgres", check=False).returncode == 0
    # Without POSTGRES=1 the API is back on its SQLite file, where this job never was; it says so.
    sqlite = pg_stack.make("run-docker")
    assert sqlite.returncode == 0, sqlite.stdout + sqlite.stderr
    assert f"this stack has jobs in PostgreSQL (volume {pg_stack.project}_postgres)" in sqlite.stderr
    assert pg_stack.get(f"/jobs/status?job_id={job_id}", pg_stack.login()).status_code == 404
    again = pg_stack.make("run-docker", POSTGRES="1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert pg_stack.results(job_id) == completed_job["results"]
    assert psql(pg_stack, "SELECT count(*) FROM jobs") == "1"
