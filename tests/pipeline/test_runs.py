"""Around a run: the process lock per checkout, a scheduler that is down, stale temporary folders.

Each test runs ``python -m pipeline run PrepareData`` (a few seconds) in a subprocess, as a user would.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import luigi.lock
import pytest

from pipeline.cli.runs import LOCK_DIR, RUNS_LOCK
from tests.support.paths import RAW_DATA, ROOT
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e


def prepare_command(artefacts: Path, *scheduler: str) -> list[str]:
    return [
        sys.executable, "-m", "pipeline", "run", "PrepareData", "--raw-data", str(RAW_DATA),
        "--artefacts-dir", str(artefacts), *(scheduler or ("--local-scheduler",)),
    ]  # fmt: skip


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **env}
    return subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def same_command_running(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process with the pipeline's exact command line that sleeps (a sitecustomize stops it at start)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import time\ntime.sleep(600)\n")
    command = prepare_command(tmp_path / "artefacts")
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(site)})
    deadline = time.monotonic() + 60
    while luigi.lock.getpcmd(process.pid) != " ".join(command) and time.monotonic() < deadline:
        time.sleep(0.05)  # /proc/<pid>/cmdline is empty for a moment after the start
    yield process
    process.kill()
    process.wait()


def hold_luigi_lock(lock_dir: Path, process: subprocess.Popen[bytes]) -> Path:
    """Write ``process`` into Luigi's pid file for its command line, as Luigi does when it takes the lock."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    _, _, pid_file = luigi.lock.get_info(str(lock_dir), process.pid)
    Path(pid_file).write_text(f"{process.pid}\n")
    return Path(pid_file)


def test_the_same_command_in_another_checkout_does_not_block(
    tmp_path: Path, same_command_running: subprocess.Popen[bytes]
) -> None:
    # Luigi's default lock folder is <tmp>/luigi for every checkout on the machine.
    machine_tmp = tmp_path / "tmp"
    hold_luigi_lock(machine_tmp / "luigi", same_command_running)
    result = run(prepare_command(tmp_path / "artefacts"), TMPDIR=str(machine_tmp))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_the_same_command_in_this_checkout_is_refused_in_a_sentence(
    tmp_path: Path, same_command_running: subprocess.Popen[bytes]
) -> None:
    pid_file = hold_luigi_lock(LOCK_DIR, same_command_running)
    try:
        result = run(prepare_command(tmp_path / "artefacts"))
    finally:
        pid_file.unlink(missing_ok=True)
    assert result.returncode == 10  # luigi.cfg [retcode] already_running
    assert "the same pipeline command is already running in this checkout" in result.stderr
    assert str(LOCK_DIR) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_central_scheduler_that_is_not_running_is_one_sentence(tmp_path: Path) -> None:
    port = free_port()
    scheduler = ("--scheduler-host", "127.0.0.1", "--scheduler-port", str(port))
    result = run(prepare_command(tmp_path / "artefacts", *scheduler))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert f"central Luigi scheduler at http://127.0.0.1:{port}/ is not running" in lines[0]
    assert "make visualiser" in lines[0]


def test_make_pipeline_with_the_central_scheduler_down_says_so() -> None:
    # -o: never (re)create the environment from here; the tests already run in it.
    command = ["make", "-s", "-o", ".tox/dev/.locked-from-requirements", "pipeline", "SCHEDULER=central"]
    result = run([*command, f"LUIGID_PORT={free_port()}"])
    assert result.returncode != 0
    assert "is not running" in result.stderr
    assert "make visualiser" in result.stderr
    assert "Traceback" not in result.stderr


def leftover(artefacts: Path) -> Path:
    """A temporary folder as a run killed mid-task leaves it (see luigi.LocalTarget.temporary_path)."""
    folder = artefacts / "PrepareData" / "PrepareData_x-luigi-tmp-0123456789"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text("half written")
    return folder


def test_temporary_folders_of_a_killed_run_are_removed_by_the_next_run(tmp_path: Path) -> None:
    folder = leftover(tmp_path / "artefacts")
    result = run(prepare_command(tmp_path / "artefacts"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not folder.exists()
    assert "removed 1 temporary folder(s) left by a killed run" in result.stderr


def test_temporary_folders_of_a_live_run_are_kept(tmp_path: Path) -> None:
    folder = leftover(tmp_path / "artefacts")
    with open(tmp_path / "artefacts" / RUNS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)  # as a run in progress holds it
        result = run(prepare_command(tmp_path / "artefacts"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert folder.is_dir()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["Nope"], "there is no task 'Nope'; the pipeline's tasks are BuildBento, CalibrateIntervals, Containerize"),
        (["TrainModel"], "requires the 'candidate' parameter to be set"),
        (["PrepareData", "--seed", "x"], "a parameter has an invalid value"),
    ],
)
def test_a_mistyped_command_is_one_sentence(arguments: list[str], message: str) -> None:
    result = run([sys.executable, "-m", "pipeline", "run", *arguments, "--local-scheduler"])
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-3000:]


def test_run_help_is_short_lists_each_parameter_once_and_points_to_luigis_full_help() -> None:
    result = run([sys.executable, "-m", "pipeline", "run", "--help"])
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) <= 40, result.stdout  # Luigi's own --help was 131 lines
    assert lines[0].startswith("usage: python -m pipeline run [TASK]")
    assert sum(line.lstrip().startswith("--seed N") for line in lines) == 1
    assert "--BuildBento-seed" not in result.stdout
    assert "--local-scheduler" in result.stdout and "--workers N" in result.stdout
    assert lines[-1] == "Every Luigi option (over a thousand lines): python -m pipeline run BuildBento --help-all"


def test_run_help_of_a_task_marks_what_it_requires() -> None:
    result = run([sys.executable, "-m", "pipeline", "run", "TrainModel", "-h"])
    assert result.returncode == 0, result.stderr[-3000:]
    candidate = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("--candidate "))
    assert candidate.endswith("(required)") and "random_forest" in candidate


@pytest.mark.parametrize(("workers", "warmed"), [("1", False), ("2", True)])
def test_heavy_libraries_are_imported_ahead_only_for_workers_that_fork(
    workers: str, warmed: bool, tmp_path: Path
) -> None:
    """Forked Luigi workers share what the scheduling process imported; one worker runs the tasks in
    its own process, so importing scikit-learn ahead only made a run that stops early slower."""
    config = tmp_path / "luigi.cfg"
    config.write_text(f"[core]\nworkers = {workers}\n")
    code = "import sys; from pipeline.task import warm_imports; warm_imports(); print('sklearn' in sys.modules)"
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(config)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(warmed)
