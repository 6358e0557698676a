"""A flood of bad logins must not starve predictions (issue 11): verdict against the targets.

Starts a real `bentoml serve` (the default topology) against the model in $BENTOML_HOME, then for
DURATION seconds runs 50 concurrent bad logins from one client address (127.0.0.9) while another
client (127.0.0.1) sends /predict one request at a time. Targets: /predict p99 <= 50 ms, 0 errors.

    .tox/dev/bin/python bench/login_flood.py [--duration 30] [--flooders 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import users  # noqa: E402
from tests.support.applicants import APPLICANT  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

P99_TARGET_MS = 50.0


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            try:
                async with session.get(f"{url}/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit(f"server not ready at {url}")


async def flood(url: str, stop: float, counts: dict[int, int]) -> None:
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.9", 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        while time.monotonic() < stop:
            body = {"username": "officer", "password": "not the password"}
            try:
                async with session.post(f"{url}/login", json=body) as answer:
                    await answer.read()
                    counts[answer.status] = counts.get(answer.status, 0) + 1
            except aiohttp.ClientError:
                counts[0] = counts.get(0, 0) + 1


async def predictions(url: str, token: str, stop: float) -> tuple[list[float], int]:
    latencies, errors = [], 0
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/predict", json=APPLICANT, headers=headers) as answer:
                    await answer.read()
                    errors += answer.status != 200
            except aiohttp.ClientError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
    return latencies, errors


async def run(url: str, password: str, duration: float, flooders: int) -> int:
    await wait_ready(url)
    async with aiohttp.ClientSession() as session:
        body = {"username": "officer", "password": password}
        async with session.post(f"{url}/login", json=body) as answer:
            token = (await answer.json())["access_token"]
    stop = time.monotonic() + duration
    counts: dict[int, int] = {}
    floods = [asyncio.create_task(flood(url, stop, counts)) for _ in range(flooders)]
    latencies, errors = await predictions(url, token, stop)
    await asyncio.gather(*floods)
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"bad logins sent: {sum(counts.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})")
    print(f"/predict during the flood: {len(latencies)} requests, p50 {p50:.1f} ms, p99 {p99:.1f} ms, errors {errors}")
    verdicts = [
        ("/predict p99 <= 50 ms", p99 <= P99_TARGET_MS, f"{p99:.1f} ms"),
        ("/predict errors == 0", errors == 0, str(errors)),
    ]
    print(f"{'target':<24} {'measured':>10}  verdict")
    for name, ok, measured in verdicts:
        print(f"{name:<24} {measured:>10}  {'PASS' if ok else 'FAIL'}")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--flooders", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="login-flood-"))
    password = secrets.token_urlsafe(16)
    users.add(folder / "users.json", "officer", password)
    port = free_port()
    env = {**os.environ, "JWT_SECRET_KEY": secrets.token_urlsafe(48)}
    env.update(ADMISSIONS_USERS_FILE=str(folder / "users.json"), ADMISSIONS_JOBS_DB=str(folder / "jobs.sqlite"))
    command = [sys.executable, "-m", "bentoml", "serve", "service.api:AdmissionsAPI", "--port", str(port)]
    with (folder / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        return asyncio.run(run(f"http://127.0.0.1:{port}", password, args.duration, args.flooders))
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


if __name__ == "__main__":
    sys.exit(main())
