"""Batch benchmarks against a running service: /predict_batch rows/s, and a big job's turnaround.

    TOKEN=... python bench/batch_throughput.py --url http://127.0.0.1:3000 [--rows 1000] [--clients 4]
        [--seconds 20] [--job-rows 100000] [--csv]   (--seconds 0 or --job-rows 0 skips that part)

With --csv the bodies and answers are CSV (a header, then a row per applicant), and the job's results
are downloaded as CSV; the job's figure is then from the first byte sent to the last byte of its
results received.

Runs in its own process (stdlib only: threads + http.client keep-alive connections), so it measures
the service, not an in-process shortcut. Every non-200 answer counts as a failure and is reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit


def applicants(count: int, seed: int = 7) -> list[dict[str, float | int]]:
    """Valid applicants drawn across the contract's ranges (reproducible)."""
    rng = random.Random(seed)
    return [
        {
            "gre_score": rng.randint(280, 340),
            "toefl_score": rng.randint(90, 120),
            "university_rating": rng.randint(1, 5),
            "sop": rng.randint(2, 10) / 2,
            "lor": rng.randint(2, 10) / 2,
            "cgpa": round(rng.uniform(6.5, 9.9), 2),
            "research": rng.randint(0, 1),
        }
        for _ in range(count)
    ]


COLUMNS = ("gre_score", "toefl_score", "university_rating", "sop", "lor", "cgpa", "research")


def body_of(rows: list[dict[str, float | int]], csv: bool) -> bytes:
    if not csv:
        return json.dumps({"applicants": rows}).encode()
    lines = [",".join(COLUMNS)] + [",".join(str(row[name]) for name in COLUMNS) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def count_answers(payload: bytes, csv: bool) -> int:
    """Rows in an answer: CSV lines after the header, or JSON chances."""
    if csv:
        return payload.count(b"\n") - 1
    return len(json.loads(payload)["chances"])


class Client:
    """One keep-alive connection with the bearer token set."""

    def __init__(self, url: str, token: str, csv: bool = False) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)
        media = "text/csv" if csv else "application/json"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": media, "Accept": media}

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()


def batch_load(url: str, token: str, rows: int, clients: int, seconds: float, csv: bool = False) -> dict[str, float]:
    body = body_of(applicants(rows), csv)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        client = Client(url, token, csv)
        mine, bad = [], 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status, payload = client.call("POST", "/predict_batch", body)
            mine.append(time.perf_counter() - start)
            if status != 200 or count_answers(payload, csv) != rows:
                bad += 1
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "failed": failures[0],
        "rows_per_s": round(len(latencies) * rows / elapsed),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
    }


def job_turnaround(url: str, token: str, rows: int, csv: bool = False) -> dict[str, float | str]:
    """Seconds from sending a job of ``rows`` rows to seeing it completed (polling every 20 ms), and
    to having downloaded its results."""
    client = Client(url, token, csv)
    body = body_of(applicants(rows, seed=11), csv)
    start = time.perf_counter()
    status, payload = client.call("POST", "/jobs", body)
    if status != 202:
        raise SystemExit(f"job submission failed: {status} {payload[:300]!r}")
    submitted = time.perf_counter()
    job_id = json.loads(payload)["job_id"]
    while True:
        status, payload = client.call("GET", f"/jobs/status?job_id={job_id}")
        state = json.loads(payload)["status"]
        if state in ("completed", "failed") or time.perf_counter() - start > 120:
            break
        time.sleep(0.02)
    done = time.perf_counter()
    status, payload = client.call("GET", f"/jobs/results?job_id={job_id}")
    fetched = time.perf_counter()
    count = count_answers(payload, csv) if status == 200 else 0
    return {
        "status": state,
        "rows": count,
        "upload_s": round(submitted - start, 2),
        "submitted_to_completed_s": round(done - start, 2),
        "results_fetch_s": round(fetched - done, 2),
        "total_s": round(fetched - start, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("URL", "http://127.0.0.1:3000"))
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--job-rows", type=int, default=100_000)
    parser.add_argument("--csv", action="store_true", help="CSV bodies, answers and job results")
    args = parser.parse_args()
    token = os.environ.get("TOKEN")
    if not token:
        print("error: set TOKEN to a bearer token (see bench/load_predict.sh)", file=sys.stderr)
        return 2
    if args.seconds > 0:
        figures = batch_load(args.url, token, args.rows, args.clients, args.seconds, args.csv)
        print("predict_batch", json.dumps(figures))
    if args.job_rows:
        print("job", json.dumps(job_turnaround(args.url, token, args.job_rows, args.csv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
