"""Raw-file validation throughput (issue 12: >= 1,000,000 rows/s), with a verdict; exit 1 on a miss.

Writes a synthetic raw file (bench/synthetic_data.py: the vendored distribution, 1% of rows with a
defect, plus the duplicates sampling makes), reads it with PrepareData's reader, then times
``pipeline.data.validate`` (contract checks, duplicates, reasons) RUNS times. The machine is shared, so
the verdict uses the best run (other processes only ever add time) and CPU time is shown beside it.
Reading the CSV is timed too, for information: it is pandas' C parser, not validation.

    .tox/dev/bin/python bench/validation.py [--rows 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthetic_data import write_raw  # noqa: E402
from pipeline.data import read_raw, validate  # noqa: E402
from pipeline.validation import schema  # noqa: E402

TARGET_ROWS_PER_S = 1_000_000


def timed(function, *args):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "raw.csv"
        write_raw(path, args.rows, seed=0, bad_share=0.01)
        raw, read_wall, read_cpu = timed(read_raw, path)
    schema()  # built once per process (and pandera imported): not per-row work
    runs = []
    for run in range(1, args.runs + 1):
        (valid, rejects), wall, cpu = timed(validate, raw)
        runs.append((wall, cpu))
        print(f"run {run}: validate {wall:.3f} s wall, {cpu:.3f} s CPU; {len(valid)} valid, {len(rejects)} rejected")
    best_wall, best_cpu = min(runs)
    rate = args.rows / best_wall
    verdict = "PASS" if rate >= TARGET_ROWS_PER_S else "MISS"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{args.rows} rows, {os.cpu_count()} cores, load average {load}")
    print("| measurement | target | measured | verdict |")
    print("|---|---|---|---|")
    print(
        f"| validate (best of {args.runs}) | >= {TARGET_ROWS_PER_S:,} rows/s | {rate:,.0f} rows/s "
        f"({best_wall:.3f} s wall, {best_cpu:.3f} s CPU) | {verdict} |"
    )
    read = f"{args.rows / read_wall:,.0f} rows/s ({read_wall:.3f} s wall, {read_cpu:.3f} s CPU)"
    print(f"| read_raw (information) | - | {read} | - |")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
