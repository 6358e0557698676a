"""luigid as ``make visualiser`` runs it (scripts/luigid.py), and pipeline runs that it schedules.

Each test gets its own luigid on a free loopback port, with its state, history and logs in tmp_path.
"""

from __future__ import annotations

import json
import pickle
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.train import CANDIDATES
from scripts.luigid import Luigid, LuigidError, api, running_pid, start, stop
from tests.support.paths import ROOT
from tests.support.pipeline import run_pipeline
from tests.support.ports import free_port

RUN = Counter(PrepareData=1, TrainModel=len(CANDIDATES), EvaluateModel=len(CANDIDATES), SelectModel=1,
              CalibrateIntervals=1, ExplainModel=1, RegisterModel=1)  # fmt: skip


def central(server: Luigid) -> tuple[str, ...]:
    """Options for a run against this luigid with two worker processes."""
    return ("--scheduler-host", "127.0.0.1", "--scheduler-port", str(server.port), "--workers", "2")


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[Luigid]:
    server = Luigid(tmp_path / "luigid", free_port())
    start(server)
    yield server
    stop(server)  # does nothing when the test stopped it already


def max_concurrency(manifests: list[Path]) -> int:
    """The most tasks running at one moment, from the manifests' started_at/finished_at."""
    events = []
    for path in manifests:
        manifest = json.loads(path.read_text())
        events += [
            (datetime.fromisoformat(manifest[key]), change) for key, change in (("started_at", 1), ("finished_at", -1))
        ]
    running = peak = 0
    for _, change in sorted(events):  # an end sorts before a start at the same instant
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.e2e
def test_a_two_worker_run_is_done_in_luigid_with_parameters_state_and_history(luigid: Luigid, tmp_path: Path) -> None:
    artefacts = tmp_path / "artefacts"
    # Fewer folds than a user's run: the test is about scheduling, not about the scores.
    result = run_pipeline(artefacts, tmp_path / "bentoml", "--cv-folds", "2", scheduler=central(luigid))
    assert result.returncode == 0, result.stderr[-4000:]

    done = api(luigid.url, "task_list", status="DONE")
    assert Counter(task["name"] for task in done.values()) == RUN
    assert api(luigid.url, "task_list", status="FAILED") == {}
    assert api(luigid.url, "task_list", status="PENDING") == {}
    for task in done.values():  # what the visualiser shows beside each task
        assert task["params"]["artefacts_dir"] == str(artefacts)
        assert task["params"]["seed"] == "42"
        assert len(task["params"]["data_sha256"]) == 64
    trained = {task["params"]["candidate"] for task in done.values() if task["name"] == "TrainModel"}
    assert trained == set(CANDIDATES)
    # Two workers: independent candidates ran side by side, never more than two at once.
    assert max_concurrency(sorted(artefacts.glob("*Model/*/manifest.json"))) == 2

    assert stop(luigid) is not None
    assert running_pid(luigid) is None
    tasks = pickle.loads(luigid.state_file.read_bytes())[0]  # written on SIGTERM only: (tasks, workers, ...)
    assert set(tasks) == set(done)
    with closing(sqlite3.connect(luigid.history_db)) as db:
        runs = Counter(name for (name,) in db.execute("SELECT name FROM tasks"))
        finished = db.execute("SELECT COUNT(*) FROM task_events WHERE event_name = 'DONE'").fetchone()[0]
        candidates = {value for (value,) in db.execute("SELECT value FROM task_parameters WHERE name = 'candidate'")}
    assert runs == RUN
    assert finished == RUN.total()
    assert candidates == set(CANDIDATES)


@pytest.mark.e2e
def test_a_failing_task_is_failed_in_luigid_and_the_run_exits_non_zero(luigid: Luigid, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.csv"
    result = run_pipeline(tmp_path / "artefacts", tmp_path / "bentoml", raw_data=missing, scheduler=central(luigid))
    assert result.returncode != 0, result.stderr[-4000:]

    failed = api(luigid.url, "task_list", status="FAILED")
    assert [task["name"] for task in failed.values()] == ["PrepareData"]
    [(task_id, task)] = failed.items()
    assert task["params"]["raw_data"] == str(missing)
    error = api(luigid.url, "fetch_error", task_id=task_id)["error"]  # the text the visualiser shows
    assert "DataError" in error
    assert str(missing) in error
    assert api(luigid.url, "task_list", status="DONE") == {}


@pytest.mark.e2e
def test_the_command_line_starts_once_stops_once_and_saves_the_state(tmp_path: Path) -> None:
    folder, port = tmp_path / "luigid", free_port()
    server = Luigid(folder, port)

    def cli(command: str) -> subprocess.CompletedProcess[str]:
        arguments = [command, "--dir", str(folder), "--port", str(port)]
        return subprocess.run(
            [sys.executable, "-m", "scripts.luigid", *arguments],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    started = cli("start")
    try:
        assert started.returncode == 0, started.stderr
        assert f"http://127.0.0.1:{port}" in started.stdout
        again = cli("start")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert api(server.url, "task_list") == {}
        assert (folder / "log" / "luigi-server.log").stat().st_size > 0
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert server.state_file.exists()
    assert not server.pid_file.exists()
    not_running = cli("stop")
    assert not_running.returncode == 0, not_running.stderr
    assert "not running" in not_running.stdout


def test_start_refuses_a_port_in_use_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = Luigid(tmp_path, busy.getsockname()[1])
        with pytest.raises(LuigidError, match="is in use"):
            start(server)
    assert not server.pid_file.exists()


def test_stop_never_signals_a_process_that_is_not_luigid(tmp_path: Path) -> None:
    # A pid file left behind by a luigid that died, its pid since reused by another program.
    other = subprocess.Popen(["sleep", "60"])
    try:
        server = Luigid(tmp_path)
        server.pid_file.write_text(f"{other.pid}\n")
        assert running_pid(server) is None
        assert stop(server) is None
        assert other.poll() is None  # still running
        assert not server.pid_file.exists()
    finally:
        other.kill()
        other.wait()


@pytest.mark.e2e
def test_a_luigid_that_dies_at_start_is_reported_with_the_end_of_its_output(tmp_path: Path) -> None:
    (tmp_path / "log" / "luigi-server.log").mkdir(parents=True)  # luigid cannot open its log file
    server = Luigid(tmp_path, free_port())
    with pytest.raises(LuigidError, match=r"exited at start(?s:.*)IsADirectoryError"):
        start(server)
    assert running_pid(server) is None
    assert not server.pid_file.exists()
