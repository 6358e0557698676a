"""What one client's bad requests cost the others, against real ``bentoml serve`` processes: huge CSV
headers and slow bodies while logins, job reads and the readiness probe still answer; malformed bodies
that leave a short line in the log, not a traceback; a broken users file and malformed internal calls
answered with a status and a sentence, not a 500 and a path."""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from core.contract import FEATURE_NAMES
from tests.support.applicants import applicant
from tests.support.pipeline import PipelineRun
from tests.support.service import Server, Service, service_env

pytestmark = pytest.mark.e2e
CSV_ROWS = 100_000  # so a 2 MB body is under the CSV body limit (64 bytes a row) and reaches the parser


@pytest.fixture(scope="module")
def roomy(pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server whose CSV limits let multi-megabyte bodies through to the parser (2 workers)."""
    folder = tmp_path_factory.mktemp("roomy")
    env = service_env(
        pipeline_run,
        folder,
        ADMISSIONS_MAX_CSV_BATCH_SIZE=str(CSV_ROWS),
        ADMISSIONS_MAX_CSV_JOB_SIZE=str(CSV_ROWS),
        ADMISSIONS_API_WORKERS="2",
    )
    server = Server(env, folder / "serve.log").start()
    try:
        yield Service(server.url, env, pipeline_run.model_tag, server)
    finally:
        server.stop()


def _abandon_uploads(url: str, token: str, count: int) -> None:
    """``count`` clients each send a CSV body that takes ~3 s to read (every cell wrong) and hang up."""
    slow = (",".join(FEATURE_NAMES) + "\n" + "x,x,x,x,x,x,x\n" * 400_000).encode()[: 64 * CSV_ROWS]
    host, port = url.removeprefix("http://").split(":")
    for _ in range(count):
        with socket.create_connection((host, int(port))) as sock:
            head = (
                f"POST /predict_batch HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: text/csv\r\nContent-Length: {len(slow)}\r\n\r\n"
            )
            sock.sendall(head.encode() + slow)


def _post_csv(url: str, body: bytes, token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    return requests.post(url, data=body, headers=headers, timeout=120)


def test_huge_headers_and_slow_bodies_do_not_starve_logins_job_reads_or_readiness(roomy: Service) -> None:
    """Issue: twenty 1,000,000-column CSV bodies took every worker's thread pool for a minute (504s),
    and /login, /jobs/status and /readyz hung. Now a wide header is refused at once, and bodies that
    are slow to read (every cell wrong) are read in a pool of their own."""
    token = roomy.token()
    wide = (",".join(["a"] * 1_000_000) + "\n" + "1\n" * 10).encode()  # 2 MB
    slow = (",".join(FEATURE_NAMES) + "\n" + "x,x,x,x,x,x,x\n" * 90_000).encode()  # ~1.3 MB, ~0.8 s each
    job = requests.post(
        f"{roomy.url}/jobs",
        json={"applicants": [applicant()]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()["job_id"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        bad = [pool.submit(_post_csv, f"{roomy.url}/predict_batch", wide, token) for _ in range(10)]
        bad += [pool.submit(_post_csv, f"{roomy.url}/jobs", wide, token) for _ in range(4)]
        bad += [pool.submit(_post_csv, f"{roomy.url}/predict_batch", slow, token) for _ in range(6)]
        time.sleep(0.5)  # the bodies are being sent and read
        # While they are in flight: the probe, a login and a job read answer, each within a generous 5 s.
        for _ in range(3):
            assert requests.get(f"{roomy.url}/readyz", timeout=5).status_code == 200
            login = requests.post(
                f"{roomy.url}/login", json={"username": "alice", "password": "correct horse battery"}, timeout=5
            )
            assert login.status_code == 200, login.text
            status = requests.get(
                f"{roomy.url}/jobs/status?job_id={job}", headers={"Authorization": f"Bearer {token}"}, timeout=5
            )
            assert status.status_code == 200, status.text
        answers = [future.result() for future in bad]
    for answer in answers[:14]:
        assert answer.status_code == 400, answer.text[:300]
        assert "line 1 (the header): longer than 1,024 bytes" in answer.json()["error"]
    for answer in answers[14:]:
        assert answer.status_code == 400, answer.text[:300]
        body = answer.json()
        assert body["problem_count"] == 90_000 * 7 and body["problems"][0].startswith("line 2, column gre_score")


def test_a_client_that_leaves_does_not_keep_its_body_being_read(roomy: Service) -> None:
    """Eight clients send bodies that take ~3 s each to read, and hang up at once: the worker stops
    reading them, so the next client's body (through the same parse pool) is answered long before the
    ~12 s per worker that reading all of them would take."""
    token = roomy.token()
    _abandon_uploads(roomy.url, token, 8)
    time.sleep(0.5)
    good = (",".join(FEATURE_NAMES) + "\n" + "320,110,4,4.5,4.0,9.1,1\n" * 300).encode()  # > 4 KiB: the pool
    started = time.monotonic()
    answer = _post_csv(f"{roomy.url}/predict_batch", good, token)
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.text.splitlines()) == 301
    assert time.monotonic() - started < 8  # generous: abandoned reads stop within ~1,000 lines


def test_malformed_bodies_leave_a_short_line_in_the_log_not_a_traceback(roomy: Service) -> None:
    """Issue: an unauthenticated POST /login with {"username": 1} logged a 2.2 KB pydantic traceback,
    and so did every body BentoML's parser refused on the other routes."""
    token = {"Authorization": f"Bearer {roomy.token()}"}
    log = roomy.server.log
    before = log.stat().st_size
    sent = 0
    bodies: list[tuple[str, Any, dict[str, str]]] = [
        ("/login", {"username": 1}, {}),
        ("/login", {"username": "alice"}, {}),
        ("/login", [1, 2], {}),
        ("/predict", {"gre_score": "many"}, token),
        ("/predict", {**applicant(), "extra": 1}, token),
        ("/predict_batch", {"applicants": [{"gre_score": 1}]}, token),
        ("/predict_batch", {"applicants": "none"}, token),
        ("/jobs", {"applicants": [applicant(cgpa=99)]}, token),
    ]
    for _ in range(10):
        for path, body, headers in bodies:
            answer = requests.post(f"{roomy.url}{path}", json=body, headers=headers, timeout=30)
            assert answer.status_code == 400, (path, answer.text)
            assert "Traceback" not in answer.text and answer.json()["error"]
            sent += 1
        answer = requests.post(
            f"{roomy.url}/login", data=b'{"username": ', headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400 and "Traceback" not in answer.text
        sent += 1
    time.sleep(1)  # the log is written by the workers
    grown = log.read_text(errors="replace")[before:] if log.stat().st_size > before else ""
    assert "Traceback" not in grown, grown[:3000]
    # At most a few short lines a minute per worker (service/quiet.py), whatever the number of requests.
    assert len(grown) <= 2 * 2 * 5 * 300, grown[:3000]
    assert len(grown.splitlines()) <= 2 * 2 * 5 < sent


def test_an_unreadable_users_file_is_a_503_with_a_sentence_the_path_goes_to_the_log(roomy: Service) -> None:
    users_file = Path(roomy.env["ADMISSIONS_USERS_FILE"])
    token = {"Authorization": f"Bearer {roomy.token()}"}
    saved = users_file.read_bytes()
    try:
        users_file.write_text('{"users": ')  # half-written (an editor, a full disk)
        login = requests.post(
            f"{roomy.url}/login", json={"username": "alice", "password": "correct horse battery"}, timeout=30
        )
        assert login.status_code == 503, login.text
        assert login.json()["error"] == "logins are unavailable at the moment: try again later"
        read = requests.get(f"{roomy.url}/model", headers=token, timeout=30)  # tokens are checked against it
        assert read.status_code == 503 and str(users_file) not in read.text and "Expecting" not in read.text
        assert str(users_file) not in login.text
        time.sleep(1)
        assert f"cannot read users file {users_file}" in roomy.server.tail(200)
    finally:
        users_file.write_bytes(saved)
    assert requests.get(f"{roomy.url}/model", headers=token, timeout=30).status_code == 200


def test_sigterm_stops_the_server_at_once_after_clients_left_mid_body(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    """Issue: after abandoned uploads, SIGTERM no longer stopped the server within 30 s. Each request
    whose client had left stayed alive until BentoML's 60 s traffic timeout (service/patches.py)."""
    import os
    import signal
    import subprocess

    env = service_env(pipeline_run, tmp_path, ADMISSIONS_MAX_CSV_BATCH_SIZE=str(CSV_ROWS))
    server = Server(env, tmp_path / "serve.log").start()
    try:
        _abandon_uploads(server.url, Service(server.url, env, pipeline_run.model_tag, server).token(), 4)
        time.sleep(2)  # the bodies are read and their parses abandoned
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=25)  # a clean stop takes about a second; it took 60 s
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not stop within 25 s of SIGTERM:\n{server.tail()}") from None
    finally:
        server.stop()
