"""Peak memory of one API worker while it takes a job upload, JSON or CSV, per row (issues 12 and 13).

Starts a real `bentoml serve` (one API worker) against the registered model in $BENTOML_HOME, submits
jobs of growing size, samples the worker's RSS every 20 ms during each upload, and prints the peak
growth per row. The default ADMISSIONS_MAX_JOB_SIZE is derived from this figure (docs/operations.md).

    .tox/dev/bin/python bench/job_memory.py [--csv] [rows ...]   # default: 25000 50000 100000
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import users  # noqa: E402
from tests.support.ports import free_port  # noqa: E402


def wait_ready(url: str, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server not ready at {url}")


def main(sizes: list[int], csv: bool) -> int:
    folder = Path(tempfile.mkdtemp(prefix="job-memory-"))
    users.add(folder / "users.json", "bench", "bench-password")
    port = free_port()
    env = {
        **os.environ,
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "ADMISSIONS_USERS_FILE": str(folder / "users.json"),
        "ADMISSIONS_JOBS_DB": str(folder / "jobs.sqlite"),
        "ADMISSIONS_API_WORKERS": "1",
        "ADMISSIONS_MAX_JOB_SIZE": str(max(sizes)),
        "ADMISSIONS_MAX_CSV_JOB_SIZE": str(max(sizes)),
    }
    log = folder / "serve.log"
    command = [sys.executable, "-m", "bentoml", "serve", "service.api:AdmissionsAPI", "--port", str(port)]
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/readyz")
        token = requests.post(f"{url}/login", json={"username": "bench", "password": "bench-password"}, timeout=30)
        media = "text/csv" if csv else "application/json"
        headers = {"Authorization": f"Bearer {token.json()['access_token']}", "Content-Type": media}
        worker = max(psutil.Process(server.pid).children(recursive=True), key=lambda p: p.memory_info().rss)
        row = {"gre_score": 320, "toefl_score": 110, "university_rating": 4, "sop": 4.5, "lor": 4.0, "cgpa": 9.1}
        row["research"] = 1
        print(f"{'rows':>9} {'body MB':>8} {'baseline MiB':>13} {'peak MiB':>9} {'bytes/row':>10}")
        for size in sizes:
            if csv:
                body = (",".join(row) + "\n" + (",".join(map(str, row.values())) + "\n") * size).encode()
            else:
                body = json.dumps({"applicants": [row] * size}).encode()
            baseline = worker.memory_info().rss
            peak = baseline
            done = threading.Event()

            def sample(done: threading.Event = done) -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, worker.memory_info().rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            answer = requests.post(f"{url}/jobs", data=body, headers=headers, timeout=600)
            done.set()
            sampler.join()
            assert answer.status_code == 202, answer.text[:300]
            per_row = (peak - baseline) / size
            print(f"{size:>9} {len(body) / 1e6:>8.1f} {baseline / 2**20:>13.0f} {peak / 2**20:>9.0f} {per_row:>10.0f}")
            time.sleep(2)
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
    return 0


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--csv"]
    sys.exit(main([int(a) for a in arguments] or [25_000, 50_000, 100_000], csv="--csv" in sys.argv[1:]))
