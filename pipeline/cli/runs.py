"""Around a Luigi run: the process lock, stale temporary folders, and a reachable scheduler."""

from __future__ import annotations

import fcntl
import shutil
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import luigi.interface
import luigi.lock

from pipeline.provenance import PROJECT_ROOT

# Luigi's default is one folder in /tmp for every checkout on the machine, and its lock is keyed by
# the command line alone: two clones running `make pipeline` blocked each other.
LOCK_DIR = PROJECT_ROOT / "var" / "luigi-lock"
RUNS_LOCK = ".runs.lock"  # in the artefacts folder: held (shared) by every run using it
_TEMPORARY = "*/*-luigi-tmp-*"  # luigi.LocalTarget.temporary_path's names, one level below a task family


def take_process_lock(env: luigi.interface.core) -> str | None:
    """Luigi's lock on this command line (one run of it at a time); a sentence when another run holds it."""
    if env.no_lock:
        return None
    kill_signal = signal.SIGUSR1 if env.take_lock else None
    Path(env.lock_pid_dir).parent.mkdir(parents=True, exist_ok=True)  # Luigi makes only the last level
    if luigi.lock.acquire_for(env.lock_pid_dir, env.lock_size, kill_signal):
        return None
    return (
        f"the same pipeline command is already running in this checkout (process id above; lock folder "
        f"{env.lock_pid_dir}); wait for it to finish or stop it, then run again"
    )


@contextmanager
def artefacts_in_use(artefacts: Path) -> Iterator[list[Path]]:
    """Mark ``artefacts`` as in use for the run; first remove the temporary folders no live run is writing.

    Every run holds a shared lock on ``artefacts/.runs.lock``; the kernel drops it when the run ends,
    killed or not. A run that can take the lock exclusively is alone, so every temporary folder it
    finds was left by a killed run. Yields the folders removed.
    """
    artefacts.mkdir(parents=True, exist_ok=True)
    with open(artefacts / RUNS_LOCK, "a") as handle:
        removed: list[Path] = []
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another run is writing here: its temporary folders are not stale
        else:
            removed = sorted(artefacts.glob(_TEMPORARY))
            for folder in removed:
                shutil.rmtree(folder, ignore_errors=True)
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield removed


def scheduler_problem(env: luigi.interface.core) -> str | None:
    """A sentence when the central scheduler cannot be reached (Luigi would retry for a minute, then trace)."""
    if env.local_scheduler:
        return None
    url = env.scheduler_url or f"http://{env.scheduler_host}:{env.scheduler_port}/"
    parts = urlsplit(url)
    if not parts.scheme.startswith("http") or parts.scheme.startswith("http+unix") or not parts.hostname:
        return None  # a socket path or an unusual URL: let Luigi connect
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=5).close()
    except OSError as exc:
        return (
            f"the central Luigi scheduler at {url} is not running ({exc.strerror or exc}); start it with "
            f"`make visualiser`, or use the local scheduler (`make pipeline SCHEDULER=local`, or --local-scheduler)"
        )
    return None
