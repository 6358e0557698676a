"""Where a /predict's CPU goes in the compose stack: one wrk run, with the CPU time of each container
(its cgroup's cpuacct, v1, or cpu.stat, v2) and of docker-proxy (the userland proxy of a published
loopback port) read before and after, per request; and how often each container was throttled by
its CPU quota.

    TOKEN=... python bench/compose_cost.py PROJECT URL CLIENTS SECONDS

Prints wrk's RESULT line (bench/predict.lua), then a line per container and one for docker-proxy.
Reads /proc and /sys/fs/cgroup of the host: run it on the machine of the Docker engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def containers(project: str) -> dict[str, str]:
    ids = output(["docker", "compose", "-p", project, "ps", "-q"]).split()
    inspected = json.loads(output(["docker", "inspect", *ids]) or "[]")
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c["Id"] for c in inspected}


def usage(cid: str) -> tuple[float, int, float] | None:
    """CPU seconds, throttled periods, throttled seconds of a container, or None where not found."""
    v1 = CGROUP / "cpuacct" / "docker" / cid / "cpuacct.usage"
    if v1.exists():
        stat = dict(line.split() for line in (CGROUP / "cpu" / "docker" / cid / "cpu.stat").read_text().splitlines())
        return int(v1.read_text()) / 1e9, int(stat["nr_throttled"]), int(stat["throttled_time"]) / 1e9
    for v2 in (CGROUP / "system.slice" / f"docker-{cid}.scope", CGROUP / "docker" / cid):
        if (v2 / "cpu.stat").exists():
            stat = dict(line.split() for line in (v2 / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6, int(stat["nr_throttled"]), int(stat["throttled_usec"]) / 1e6
    return None


def proxy_seconds() -> float:
    """CPU seconds of every docker-proxy process (utime + stime)."""
    total = 0
    found = output(["pgrep", "-x", "docker-proxy"]).split()
    for pid in found:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main(project: str, url: str, clients: str, seconds: str) -> None:
    ids = containers(project)
    before = {name: usage(cid) for name, cid in ids.items()}
    proxy_before = proxy_seconds()
    here = Path(__file__).parent
    command = [str(here / "load_predict.sh"), url, clients, seconds]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    proxy_after = proxy_seconds()
    after = {name: usage(cid) for name, cid in ids.items()}
    print(out.stdout, end="")
    result = next((line for line in out.stdout.splitlines() if line.startswith("RESULT ")), None)
    if result is None:
        print(out.stderr, file=sys.stderr)
        sys.exit(1)
    requests = max(1, int(result.split()[1].split("=")[1]))
    for name in sorted(ids):
        a, b = before[name], after[name]
        if a is None or b is None:
            print(f"CPU {name}: no cgroup CPU figures found")
            continue
        print(f"CPU {name}: {1e6 * (b[0] - a[0]) / requests:.0f} us/request, throttled in {b[1] - a[1]} periods "
              f"({1e3 * (b[2] - a[2]):.0f} ms)")  # fmt: skip
    print(f"CPU docker-proxy: {1e6 * (proxy_after - proxy_before) / requests:.0f} us/request")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
