"""Raw-file validation throughput (issue 12: >= 1,000,000 rows/s), with a verdict; exit 1 on a miss.

Writes a synthetic raw file (bench/synthetic_data.py: the vendored distribution, 1% of rows with a
defect, plus the duplicates sampling makes), reads it with PrepareData's reader (``read_raw``), then
times ``pipeline.data.validate`` (parsing, contract checks, duplicates, reasons) RUNS times. The
machine is shared, so the verdict uses the best run (other processes only ever add time); CPU time
and the load average are shown beside it. The first run in the process is shown too: it includes
pandera's one-time setup (it registers its pandas backends, which imports hypothesis) and the first
use of fresh memory, which PrepareData (one validation per process) pays.

For information, not judged: ``read_raw`` itself (pandas' C parser; it reads the contract's columns as
categoricals, so each column arrives dictionary-encoded), reading and validating together, and
``validate`` on the same cells as plain text columns (a frame built in memory, not by ``read_raw``:
each column's distinct texts must then be found by hashing every cell).

    .tox/dev/bin/python bench/validation.py [--rows 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthetic_data import write_raw  # noqa: E402
from pipeline.data import read_raw, validate  # noqa: E402
from pipeline.validation import schema  # noqa: E402

TARGET_ROWS_PER_S = 1_000_000


def timed_runs(runs: int, label: str, function: Callable[..., Any], *args: Any) -> tuple[Any, list[float], list[float]]:
    """``function(*args)`` ``runs`` times: its result, and the wall and CPU seconds of each run (printed)."""
    walls, cpus = [], []
    for run in range(1, runs + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        print(f"  {label} run {run}: {walls[-1]:.3f} s wall, {cpus[-1]:.3f} s CPU")
    return result, walls, cpus


def rate(rows: int, wall: float, cpu: float) -> str:
    return f"{rows / wall:,.0f} rows/s ({wall:.3f} s wall, {cpu:.3f} s CPU)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "raw.csv"
        write_raw(path, args.rows, seed=0, bad_share=0.01)
        raw, read_walls, read_cpus = timed_runs(args.runs, "read_raw", read_raw, path)
    schema()  # built once per process (and pandera imported): not per-row work
    (valid, rejects), walls, cpus = timed_runs(args.runs, "validate", validate, raw)
    _, text_walls, text_cpus = timed_runs(args.runs, "validate (text columns)", validate, raw.astype(str))
    read_wall, read_cpu, wall, cpu = min(read_walls), min(read_cpus), min(walls), min(cpus)
    passed = args.rows / wall >= TARGET_ROWS_PER_S
    load = ", ".join(f"{before:.2f} -> {after:.2f}" for before, after in zip(load_before, os.getloadavg(), strict=True))
    print(f"\n{args.rows:,} rows ({len(valid):,} valid, {len(rejects):,} rejected), {os.cpu_count()} cores")
    print(f"load average (1, 5, 15 min) before -> after: {load}")
    print(f"best of {args.runs} runs each\n")
    print("| measurement | target | measured | verdict |")
    print("|---|---|---|---|")
    print(f"| read_raw (information) | - | {rate(args.rows, read_wall, read_cpu)} | - |")
    print(f"| read_raw + validate (information) | - | {rate(args.rows, read_wall + wall, read_cpu + cpu)} | - |")
    print(f"| validate, first run in the process (information) | - | {rate(args.rows, walls[0], cpus[0])} | - |")
    print(f"| validate, text columns (information) | - | {rate(args.rows, min(text_walls), min(text_cpus))} | - |")
    verdict = "PASS" if passed else "MISS"
    print(f"| validate | >= {TARGET_ROWS_PER_S:,} rows/s | {rate(args.rows, wall, cpu)} | {verdict} |")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
