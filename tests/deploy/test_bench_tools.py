"""`make bench-service` checks its load tools before it starts anything, and says how to install them;
`make bench-tests` times a command and judges it against the test loop's target."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

BASH = shutil.which("bash") or "/bin/bash"


def check(path: str) -> subprocess.CompletedProcess[str]:
    command = [BASH, str(ROOT / "bench" / "service.sh"), "--check"]
    return subprocess.run(command, env={"PATH": path}, capture_output=True, text=True, timeout=30, check=False)


def test_without_the_load_tools_the_benchmark_says_how_to_install_them_in_one_sentence(tmp_path: Path) -> None:
    result = check(str(tmp_path))  # a PATH with neither wrk nor hey
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "(missing here: wrk hey)" in lines[0] and "sudo apt-get install -y wrk hey" in lines[0]


def test_with_both_tools_on_the_path_the_check_passes(tmp_path: Path) -> None:
    for tool in ("wrk", "hey"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    assert check(str(tmp_path)).returncode == 0
    (tmp_path / "hey").unlink()
    missing_one = check(str(tmp_path))
    assert missing_one.returncode == 2 and "(missing here: hey)" in missing_one.stderr


def bench_tests(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "bench" / "test_loop.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_the_test_loop_benchmark_counts_the_cpu_of_what_it_times_and_gives_a_verdict() -> None:
    spin = "import time; end = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    burn = f"--command={shlex.quote(sys.executable)} -c '{spin}'"  # half a second of CPU
    passed = bench_tests(burn, "--target-s", "60")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    run = re.search(r"^\s+1\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)%", passed.stdout, re.MULTILINE)
    assert run is not None, passed.stdout
    wall, tree_cpu, machine = (float(run.group(i)) for i in (1, 2, 3))
    assert tree_cpu >= 0.4 and wall >= 0.4  # the half second of CPU it burnt, in its own process
    assert machine >= 0.8 * tree_cpu  # the machine was busy at least while it burnt
    assert re.search(r"wall clock, slowest run .*<=\s+60\s+PASS", passed.stdout)
    missed = bench_tests(burn, "--target-s", "0.1")
    assert missed.returncode == 1 and "MISS" in missed.stdout
    failed = bench_tests(f"--command={shlex.quote(sys.executable)} -c 'raise SystemExit(3)'")
    assert failed.returncode == 1 and "(exit 3)" in failed.stdout and "a run failed" in failed.stdout
