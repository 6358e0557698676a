"""The whole pipeline at 500, 100k and 1M raw rows: time per task, and a verdict on the 5-minute target.

For each size it writes a raw file (500: the vendored file; others: bench/synthetic_data.py, drawn
from the vendored distribution, 1% of rows with a defect), runs what ``make pipeline`` runs
(``python -m pipeline run BuildBento --local-scheduler --workers 2``) into a temporary artefacts folder
and ``BENTOML_HOME``, times the command from outside, and reads each task's start and finish time from
its manifest. Prints one table (seconds per task and size) and exits 1 when a run fails or the largest
run takes longer than the target. Nothing is kept (``--keep DIR`` keeps the artefacts).

    .tox/dev/bin/python bench/pipeline_scale.py [--rows 500 100000 1000000] [--target-s 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthetic_data import VENDORED, write_raw  # noqa: E402


def task_seconds(artefacts: Path) -> dict[str, float]:
    """Seconds per task (``Family`` or ``Family candidate``), from the manifests' start and finish times."""
    seconds = {}
    for manifest in sorted(artefacts.glob("*/*/manifest.json")):
        record = json.loads(manifest.read_text())
        if "finished_at" not in record:
            continue
        name = " ".join(filter(None, [record["task_family"], record["parameters"].get("candidate")]))
        elapsed = datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])
        seconds[name] = elapsed.total_seconds()
    return seconds


def run(rows: int, work: Path) -> tuple[float, dict[str, float], str]:
    """One clean pipeline run on ``rows`` raw rows: (wall seconds, seconds per task, error or "")."""
    raw = VENDORED
    if rows != 500:
        raw = work / "raw.csv"
        write_raw(raw, rows, seed=0, bad_share=0.01)
    command = [
        sys.executable, "-m", "pipeline", "run", "BuildBento", "--local-scheduler", "--workers", "2",
        "--raw-data", str(raw), "--artefacts-dir", str(work / "artefacts"),
    ]  # fmt: skip
    env = {**os.environ, "BENTOML_HOME": str(work / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    error = "" if done.returncode == 0 else (done.stdout + done.stderr).strip().splitlines()[-1]
    return wall, task_seconds(work / "artefacts"), error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[500, 100_000, 1_000_000])
    parser.add_argument("--target-s", type=float, default=300.0, help="budget for the largest run")
    parser.add_argument("--keep", type=Path, help="copy each run's artefacts here")
    args = parser.parse_args()
    results = {}
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="pipeline-scale-") as folder:
            results[rows] = run(rows, Path(folder))
            if args.keep:
                shutil.copytree(Path(folder) / "artefacts", args.keep / str(rows), dirs_exist_ok=True)
        wall, _, error = results[rows]
        print(f"{rows} rows: {wall:.1f} s {'FAILED: ' + error if error else ''}", flush=True)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nseconds per task ({os.cpu_count()} cores, load average after the runs {load})")
    print("| task | " + " | ".join(f"{rows:,} rows" for rows in args.rows) + " |")
    print("|---|" + "---|" * len(args.rows))
    tasks = sorted({task for _, seconds, _ in results.values() for task in seconds})
    for task in tasks:
        cells = [f"{results[rows][1][task]:.1f}" if task in results[rows][1] else "-" for rows in args.rows]
        print(f"| {task} | " + " | ".join(cells) + " |")
    print("| **whole command (wall)** | " + " | ".join(f"**{results[rows][0]:.1f}**" for rows in args.rows) + " |")
    largest = max(args.rows)
    wall, _, error = results[largest]
    verdict = "PASS" if not error and wall <= args.target_s else "MISS"
    print(f"\n| {largest:,} rows through BuildBento | <= {args.target_s:.0f} s | {wall:.1f} s | {verdict} |")
    failed = [rows for rows, (_, _, error) in results.items() if error]
    return 0 if verdict == "PASS" and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
