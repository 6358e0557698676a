"""`make bench-service` checks its load tools before it starts anything, and says how to install them."""

from __future__ import annotations

import shutil
import subprocess
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
