"""What the container this process runs in may use: its memory and CPU limits, read from the cgroup.

The API sizes itself from them (service/settings.py: one worker per CPU of the quota; the memory budget
of service/middleware/memory_budget.py). Two workers in a 1-CPU container burn the CFS quota on two
cores in half a period and are then stopped for the other half (that was the p99 of /predict), and one
worker per container makes its memory budget the container's.
"""

from __future__ import annotations

import math
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
MIB = 2**20
BASE_BYTES = 128 * MIB  # the server process of the container (RSS measured ~100 MiB idle)
WORKER_BYTES = 192 * MIB  # one API worker, idle (RSS measured ~160 MiB)
SAFETY = 0.8  # what the estimates miss: the allocator's fragmentation, the job runner's chunks
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit number
_UNLIMITED_V1 = 2**62


def memory_limit(root: Path = CGROUP) -> int | None:
    """The container's memory limit in bytes (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``)."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit() or int(text) >= _UNLIMITED_V1:
            return None
        return int(text)
    return None


def cpu_limit(root: Path = CGROUP) -> float | None:
    """The container's CPUs (CFS quota / period: v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def default_workers(default: int, root: Path = CGROUP) -> int:
    """``default``, or fewer in a container with fewer CPUs: one worker per CPU of its quota, rounded up."""
    cpus = cpu_limit(root)
    return default if cpus is None else max(1, min(default, math.ceil(cpus)))


def per_worker_bytes(workers: int, budget_mb: int | None, root: Path = CGROUP) -> int | None:
    """The budget of one worker: ``budget_mb`` (ADMISSIONS_MEMORY_BUDGET_MB) when set, else derived from
    the cgroup's limit, else None (no budget)."""
    if budget_mb is not None:
        return budget_mb * MIB
    limit = memory_limit(root)
    if limit is None:
        return None
    return max(0, int((limit - BASE_BYTES - workers * WORKER_BYTES) * SAFETY / workers))
