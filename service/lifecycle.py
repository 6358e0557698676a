"""Serving processes die with the process that started them.

``bentoml serve`` starts its workers (and, in the default topology, the batch model service) through
circus, each in a process group of its own. When the server is killed outright (SIGKILL of its process
group, an OOM kill, a terminal closed) the workers used to live on with no supervisor, serving and
running jobs, and the next start on the same port failed with "Address already in use". Linux's
parent-death signal fixes that at the source: each serving process asks the kernel for SIGTERM when
its parent dies, and SIGTERM shuts a worker down cleanly (a running job goes back to pending).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

logger = logging.getLogger("admissions.lifecycle")
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask for ``sig`` when the parent process dies; False where the platform cannot (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getppid()
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
    return True
