"""The whole pipeline at scale, per data shape: time per task, peak memory, and a verdict per target.

For each data shape and size it writes a raw file, runs what ``make pipeline`` runs
(``python -m pipeline run BuildBento --local-scheduler --workers 2``) into a temporary artefacts folder
and ``BENTOML_HOME``, times the command from outside, samples the memory of its whole process tree
(the command, Luigi's task processes and their CV processes) every 0.2 s, and reads each task's start
and finish time from its manifest.

Data shapes (500 rows is always the vendored file, whatever the shape):
- ``synthetic``: bench/synthetic_data.py, a multivariate normal fitted to the vendored rows (a linear
  label, smooth untied values);
- ``jittered``: bench/jittered_data.py, copies of the vendored rows with small seeded noise (their
  non-linear labels, ~500 tight clusters of tied values).
Both seeded (``--seed``), with 1% of rows given one defect.

The run is forced past the promotion gate (``--force-promote``): the gate judges quality and this
measures cost; the gate's own verdict is printed. Memory is the sum of the resident set sizes (RSS)
of every process of the tree at the same instant, the figure the target is judged on; forked
processes share pages, which RSS counts once per process, so the sum over-states what the machine
gives (the proportional set size, PSS, is printed beside it). The tree's CPU seconds (user + system)
are printed too: on a shared machine the wall time grows with the other sessions' load, the CPU time
much less, so it says what a quiet 2-core machine would take (at least half of it, with 2 workers).
``--keep`` also keeps the samples (``memory.csv``) and the run's log.

Prints one table per shape (seconds per task and size, peak memory) and one verdict row per target,
shape and size at or above ``--judge-rows``; exits 1 when a run fails or a target is missed.

    .tox/dev/bin/python bench/pipeline_scale.py [--shapes synthetic jittered] [--rows 500 100000 1000000]
        [--target-s 120] [--target-mb 1500] [--judge-rows 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import jittered_data, synthetic_data  # noqa: E402

# The gate judges quality, this benchmark measures cost: a refused model (the booster selected on jittered
# data fails the behaviour check) would stop the run before BuildBento. Forced past, the verdict is kept.
FORCED = "bench/pipeline_scale.py: measures cost, not quality"
SHAPES = {"synthetic": synthetic_data.write_raw, "jittered": jittered_data.write_raw}


@dataclass
class Run:
    """One pipeline run: wall seconds, seconds per task, peak tree RSS and PSS (MB), the error if any."""

    wall: float = 0.0
    tasks: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    peak_processes: int = 0
    cpu_s: float = 0.0  # user + system seconds of the whole tree: what the load on a shared machine does not inflate
    selected: str = ""
    gate: str = ""
    error: str = ""


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


def selected(artefacts: Path) -> str:
    found = sorted(artefacts.glob("SelectModel/*/selection.json"))
    return str(json.loads(found[0].read_text())["chosen"]) if found else ""


def gate_verdict(artefacts: Path) -> str:
    """The gate's own verdict, before the benchmark forced past it, and the checks that failed."""
    found = sorted(artefacts.glob("PromoteModel/*/decision.json"))
    if not found:
        return ""
    decision = json.loads(found[0].read_text())
    failed = [check["name"] for check in decision["checks"] if not check["passed"]]
    return "passed" if not failed else "refused (" + ", ".join(failed) + ")"


class TreeMemory(threading.Thread):
    """Samples the summed RSS (and PSS) of a process and all its descendants until stopped."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self.timeline: list[tuple[float, int, int, int]] = []  # (seconds, processes, RSS, PSS) per sample
        self.began = time.perf_counter()
        self.done = threading.Event()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = pss = 0
        for process in tree:
            try:
                info = process.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, len(tree))
        self.timeline.append((time.perf_counter() - self.began, len(tree), rss, pss))

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every)


def run(raw: Path, work: Path) -> Run:
    """One clean pipeline run on ``raw``."""
    command = [
        sys.executable, "-m", "pipeline", "run", "BuildBento", "--local-scheduler", "--workers", "2",
        "--raw-data", str(raw), "--artefacts-dir", str(work / "artefacts"),
        "--force-promote", FORCED,
    ]  # fmt: skip
    env = {**os.environ, "BENTOML_HOME": str(work / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    log = work / "run.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        memory = TreeMemory(process.pid)
        memory.start()
        code = process.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # every descendant, each waited for by its parent
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    memory.done.set()
    memory.join()
    with open(work / "memory.csv", "w") as out:  # kept with --keep: which task the peak belongs to
        out.write("seconds,processes,rss_mb,pss_mb\n")
        out.writelines(f"{t:.1f},{n},{rss / 2**20:.0f},{pss / 2**20:.0f}\n" for t, n, rss, pss in memory.timeline)
    error = "" if code == 0 else (log.read_text().strip().splitlines() or ["(no output)"])[-1]
    return Run(
        wall=wall,
        tasks=task_seconds(work / "artefacts"),
        peak_rss_mb=memory.peak_rss / 2**20,
        peak_pss_mb=memory.peak_pss / 2**20,
        peak_processes=memory.peak_processes,
        cpu_s=cpu,
        selected=selected(work / "artefacts"),
        gate=gate_verdict(work / "artefacts"),
        error=error,
    )


def table(shape: str, results: dict[int, Run]) -> None:
    sizes = list(results)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{shape}: seconds per task ({os.cpu_count()} cores, load average after the runs {load})")
    print("| task | " + " | ".join(f"{rows:,} rows" for rows in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    tasks = sorted({task for result in results.values() for task in result.tasks})
    for task in tasks:
        cells = [f"{results[rows].tasks[task]:.1f}" if task in results[rows].tasks else "-" for rows in sizes]
        print(f"| {task} | " + " | ".join(cells) + " |")
    print("| **whole command (wall)** | " + " | ".join(f"**{results[rows].wall:.1f}**" for rows in sizes) + " |")
    print("| CPU seconds of the tree (user + system) | " + " | ".join(f"{results[r].cpu_s:.1f}" for r in sizes) + " |")
    print("| peak RSS of the process tree (MB) | " + " | ".join(f"{results[r].peak_rss_mb:.0f}" for r in sizes) + " |")
    print("| peak PSS of the process tree (MB) | " + " | ".join(f"{results[r].peak_pss_mb:.0f}" for r in sizes) + " |")
    print("| most processes at once | " + " | ".join(str(results[r].peak_processes) for r in sizes) + " |")
    print("| selected | " + " | ".join(results[r].selected or "-" for r in sizes) + " |")
    print("| the gate's own verdict (forced past) | " + " | ".join(results[r].gate or "-" for r in sizes) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--rows", type=int, nargs="+", default=[500, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated raw files")
    parser.add_argument("--target-s", type=float, default=120.0, help="wall-time budget of a judged run")
    parser.add_argument("--target-mb", type=float, default=1500.0, help="peak tree RSS budget of a judged run")
    parser.add_argument("--judge-rows", type=int, default=1_000_000, help="runs this size and larger are judged")
    parser.add_argument("--keep", type=Path, help="copy each run's artefacts and log here")
    args = parser.parse_args()
    results: dict[str, dict[int, Run]] = {}
    for shape in args.shapes:
        results[shape] = {}
        for rows in args.rows:
            with tempfile.TemporaryDirectory(prefix="pipeline-scale-") as folder:
                work = Path(folder)
                raw = synthetic_data.VENDORED
                if rows != 500:
                    raw = work / "raw.csv"
                    SHAPES[shape](raw, rows, seed=args.seed, bad_share=0.01)
                result = results[shape][rows] = run(raw, work)
                if args.keep:
                    kept = args.keep / shape / str(rows)
                    shutil.copytree(work / "artefacts", kept, dirs_exist_ok=True)
                    for name in ("run.log", "memory.csv"):
                        shutil.copy(work / name, kept / name)
            failed = f" FAILED: {result.error}" if result.error else ""
            print(
                f"{shape} {rows} rows: {result.wall:.1f} s ({result.cpu_s:.1f} CPU s), "
                f"peak RSS {result.peak_rss_mb:.0f} MB (PSS {result.peak_pss_mb:.0f} MB), "
                f"selected {result.selected or '-'}{failed}",
                flush=True,
            )
    for shape, by_size in results.items():
        table(shape, by_size)
    print("\n| data shape | rows | measurement | target | measured | verdict |")
    print("|---|---|---|---|---|---|")
    verdicts = []
    for shape, by_size in results.items():
        for rows, result in by_size.items():
            if rows < args.judge_rows:
                continue
            for what, target, measured, unit in (
                ("wall time through BuildBento", args.target_s, result.wall, "s"),
                ("peak RSS of the process tree", args.target_mb, result.peak_rss_mb, "MB"),
            ):
                verdict = "PASS" if not result.error and measured <= target else "FAIL"
                verdicts.append(verdict)
                print(f"| {shape} | {rows:,} | {what} | <= {target:.0f} {unit} | {measured:.1f} {unit} | {verdict} |")
    failed = [rows for by_size in results.values() for rows, result in by_size.items() if result.error]
    return 0 if not failed and all(verdict == "PASS" for verdict in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
