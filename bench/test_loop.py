"""The test loop's speed target (issue 18): ``make test`` within 4 minutes, with a verdict.

Runs the command (``make test`` unless ``--command`` says otherwise) ``--runs`` times and prints, per run,
the wall clock, the CPU time of its process tree (user + system of every process it waited for), and the
machine's busy core-seconds over the same time (``/proc/stat``, which also counts what the tests daemonise
or orphan on purpose: PostgreSQL clusters, servers killed by the signal tests). When the machine is busy
nearly all the time, the wall clock is the CPU time over the number of cores, and only less CPU (or more
cores) makes the suite faster: the last column says how many core-seconds the target leaves at the
utilisation measured. Then one verdict row (the slowest run against ``--target-s``); exits 1 when it
misses or a run fails.

    .tox/dev/bin/python bench/test_loop.py [--runs 1] [--target-s 240] [--command "make test"]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    wall_s: float
    tree_cpu_s: float
    machine_core_s: float
    returncode: int

    @property
    def busy(self) -> float:
        """The machine's busy fraction over the run (1.0: every core busy all the time)."""
        return self.machine_core_s / (self.wall_s * CORES) if self.wall_s else 0.0


CORES = os.cpu_count() or 1


def busy_core_seconds() -> float:
    """Core-seconds the machine has spent busy since boot (everything but idle and I/O wait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(command: list[str]) -> Run:
    """Run ``command`` from the checkout; its output goes to ours, the figures are returned."""
    busy_before, cpu_before, started = busy_core_seconds(), children_cpu_s(), time.monotonic()
    done = subprocess.run(command, cwd=ROOT, check=False)
    wall = time.monotonic() - started
    return Run(wall, children_cpu_s() - cpu_before, busy_core_seconds() - busy_before, done.returncode)


def report(runs: list[Run], target_s: float) -> int:
    header = ("run", "wall s", "tree CPU-s", "machine core-s", "busy", "core-s the target leaves")
    print("\n{:>3} {:>8} {:>11} {:>15} {:>6} {:>25}".format(*header))
    for number, run in enumerate(runs, 1):
        allowed = target_s * CORES * run.busy
        failed = "" if run.returncode == 0 else f"  (exit {run.returncode})"
        print(
            f"{number:>3} {run.wall_s:>8.1f} {run.tree_cpu_s:>11.1f} {run.machine_core_s:>15.1f}"
            f" {run.busy:>6.0%} {allowed:>25.0f}{failed}"
        )
    slowest = max(run.wall_s for run in runs)
    any_failed = any(run.returncode != 0 for run in runs)
    met = slowest <= target_s and not any_failed
    name = f"wall clock, slowest run ({CORES} cores)"
    print(f"\n{'target':<40} {'figure':>8} {'goal':>8}  verdict")
    print(f"{name:<40} {slowest:>8.1f} <= {target_s:>5.0f}  {'PASS' if met else 'MISS'}")
    if any_failed:
        print("a run failed: its time is not a result")
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="how many times to run the command (default 1)")
    parser.add_argument("--target-s", type=float, default=240.0, help="the wall-clock target (default 240 s)")
    parser.add_argument("--command", default="make test", help='the command to time (default "make test")')
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    command = shlex.split(options.command)
    runs = [measure(command) for _ in range(options.runs)]
    return report(runs, options.target_s)


if __name__ == "__main__":
    sys.exit(main())
