"""Serving processes die with the process that started them.

``bentoml serve`` starts its workers (and, in the default topology, the batch model service) through
circus, each in a process group of its own. When the server is killed outright (SIGKILL of its process
group, an OOM kill, a terminal closed) the workers used to live on with no supervisor, serving and
running jobs, and the next start on the same port failed with "Address already in use". Three layers:

- Linux's parent-death signal: each serving process asks the kernel for SIGTERM when its parent dies,
  and SIGTERM shuts a worker down cleanly (a running job goes back to pending).
- The request is made when the service is created, seconds after the fork (imports, the model): a
  server killed in that window left a worker with parent pid 1 that no signal would ever reach (seen
  once in 15 kills, claiming jobs for 83 minutes). The server writes its pid to the environment before
  it starts any worker (:func:`mark_server`), so a worker can tell that its parent is already gone.
- A worker whose graceful shutdown hangs must not go on claiming jobs: the job runner asks
  :func:`supervised` before each claim and each lease renewal, and :func:`leave` ends the process
  (SIGTERM, then a hard exit after a grace period) once the server is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

logger = logging.getLogger("admissions.lifecycle")
_PR_SET_PDEATHSIG = 1
SERVER_PID = "ADMISSIONS_SERVER_PID"  # set by the serving process for the workers it starts
EXIT_GRACE_S = 10.0  # after the SIGTERM of leave(): a clean shutdown takes ~1 s
_PARENT: list[int] = []  # the process that started this one, once known


def mark_server() -> None:
    """In the serving process, before any worker starts: the workers' expected parent is this process."""
    os.environ[SERVER_PID] = str(os.getpid())


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask for ``sig`` when the parent process dies; False where the platform cannot (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getppid()
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return False
    expected = _expected_parent()
    if not _PARENT:
        _PARENT.append(expected or parent)
    if os.getppid() != parent or (expected is not None and parent != expected):
        logger.error("the server (pid %s) died before this worker started: exiting", expected or parent)
        os.kill(os.getpid(), sig)  # the parent died before the request took effect
    return True


def _expected_parent() -> int | None:
    try:
        return int(os.environ[SERVER_PID])
    except (KeyError, ValueError):
        return None


def supervised() -> bool:
    """False once the process that started this one has died (or was never there to begin with)."""
    return not _PARENT or os.getppid() == _PARENT[0]


def leave() -> None:
    """End this orphaned process: SIGTERM (a clean shutdown), and a hard exit if that hangs."""
    logger.error("the server (pid %s) is gone: this worker stops", _PARENT[0] if _PARENT else "?")
    timer = threading.Timer(EXIT_GRACE_S, os._exit, args=(3,))
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)
